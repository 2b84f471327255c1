"""The admin pages on a phone-sized window (420 px): nothing is cut off."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Tab

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(
    "path", ["/admin/jobs", "/admin/queues", "/admin/memory", "/admin/logs", "/admin/metrics"]
)
def test_log_out_stays_on_screen_at_420px(admin: Tab, path: str) -> None:
    page = admin.page
    page.set_viewport_size({"width": 420, "height": 800})
    admin.go(path)
    button = page.locator("form.logout button")
    assert button.is_visible()
    box = button.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= 420, box
    # and the page itself does not scroll sideways because of the header
    header_width = page.evaluate("document.querySelector('header.top').scrollWidth")
    assert header_width <= 420, header_width
    if path == "/admin/jobs":
        admin.shot("narrow-jobs")
