"""The harness's answer to a browser that dies under a test (tests/browser/conftest.py):
the test runs once more on a relaunched browser, and the loss is reported with the
process's exit status from the browser log."""

from __future__ import annotations

import os
import signal

import pytest

from tests.browser.conftest import BrowserLost, Chromium

pytestmark = pytest.mark.browser


def test_a_browser_killed_under_a_test_is_relaunched_and_the_test_runs_again(
    browser: Chromium, request: pytest.FixtureRequest
) -> None:
    if request.node.execution_count == 1:  # set by pytest-rerunfailures
        page = browser.current().new_context().new_page()
        page.goto("data:text/html,<title>before</title>")
        assert page.title() == "before"
        os.kill(browser.pid, signal.SIGKILL)
        # The harness's mark reruns this test on the TargetClosedError this raises; any
        # other outcome fails it.
        page.goto("data:text/html,<title>after</title>")
        pytest.fail("a page loaded in a browser whose process was killed")
    # The second run: the same fixture, a fresh browser process, and one loss on record.
    with pytest.warns(BrowserLost, match=r"signal=SIGKILL"):
        page = browser.current().new_context().new_page()
    assert browser.launches == 2
    assert len(browser.lost) == 1
    page.goto("data:text/html,<title>after</title>")
    assert page.title() == "after"


def test_only_the_loss_of_the_browser_is_retried(request: pytest.FixtureRequest) -> None:
    """The rerun mark matches the browser's loss only: an ordinary failure would fail the
    first time. Checked on the mark itself, since a deliberately failing test cannot pass."""
    mark = request.node.get_closest_marker("flaky")
    assert mark is not None
    assert mark.kwargs == {"reruns": 1, "only_rerun": [r"^TargetClosedError: "]}
