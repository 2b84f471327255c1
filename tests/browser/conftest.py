"""The admin pages against a running ``otel-assist demo`` (embedded Redis and SQLite), plus
a few crafted records with hostile content, driven by Debian's chromium through Playwright.

No browser is downloaded: Playwright launches /usr/bin/chromium. Screenshots of each page
go to test-artifacts/screenshots/.

Chromium itself can die under a test. CI once lost the browser process at the first page
load of a module and left no trace of why, so every test of that module errored. Now the
browser process's log (its stderr and exit status, through Playwright's ``pw:browser``
debug channel) goes to test-artifacts/browser/, a lost browser is relaunched for the next
tab and reported as a :class:`BrowserLost` warning with the log's tail, and the test it
was lost under runs once more (pytest-rerunfailures, only on ``TargetClosedError``). An
assertion that fails still fails: only the loss of the browser process is retried.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.demo_process import DemoProcess, start_demo
from tests.polling import poll

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
BROWSER_LOGS = ARTIFACTS / "browser"
DOC_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
GRAFANA = "http://grafana.example:3000"
XSS_SCRIPT = "<script>window.__xss = 1; alert('xss')</script>"


@dataclass
class Site:
    demo: DemoProcess
    xss_cid: str
    failed_run_cid: str
    user_id: int
    fact_ids: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.demo.base_url

    @property
    def token(self) -> str:
        return self.demo.token


def _seed_hostile_records(demo: DemoProcess) -> Site:
    """Records only an attacker would write, next to the demo's own traffic."""
    api = demo.api
    now = dt.datetime.now(dt.UTC).isoformat()
    xss_cid = "xss-probe-" + uuid.uuid4().hex[:12]
    user_id = 4242
    msg_id = uuid.uuid4().hex
    resp = api.post(
        "/queue-stats/messages/batch",
        json={
            "events": [
                {
                    "event_id": f"{msg_id}:push",
                    "message_id": msg_id,
                    "queue_name": "to_secretary",
                    "direction": "push",
                    "message_type": "user_message",
                    "source": "telegram",
                    "user_id": user_id,
                    "correlation_id": xss_cid,
                    "payload": {"text": XSS_SCRIPT, "html": '<img src=x onerror="alert(2)">'},
                    "enqueued_at": now,
                }
            ]
        },
    )
    assert resp.status_code == 200, resp.text
    run = uuid.uuid4().hex
    failed_cid = "failed-run-" + uuid.uuid4().hex[:12]
    base = {"run_id": run, "job_id": "memory_extraction", "job_type": "memory_extraction"}
    resp = api.post(
        "/job-executions/events",
        json={
            "events": [
                {
                    **base,
                    "event_id": run + ":s",
                    "kind": "started",
                    "at": now,
                    "correlation_id": failed_cid,
                    "job_name": "memory extraction",
                },
                {
                    **base,
                    "event_id": run + ":f",
                    "kind": "failed",
                    "at": now,
                    "duration_ms": 812,
                    "error": "ExtractionError: <b>bad</b> output " + XSS_SCRIPT,
                    "traceback": 'Traceback (most recent call last):\n  File "cron.py", line 84\n'
                    "ExtractionError: bad output",
                },
            ]
        },
    )
    assert resp.status_code == 200, resp.text
    site = Site(demo, xss_cid, failed_cid, user_id)
    for content in ("keep me: likes green tea", "delete me: wrong city", f"quotes {XSS_SCRIPT}"):
        resp = api.post(
            "/memories", json={"user_id": user_id, "content": content, "source": "browser-test"}
        )
        assert resp.status_code == 201, resp.text
        site.fact_ids[content.split(":")[0]] = resp.json()["id"]
    return site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A demo per test module: it would otherwise keep loading the machine for the rest of
    the test session."""
    demo = start_demo(
        tmp_path_factory.mktemp("browser-demo"),
        "--rate",
        "4",
        "--seed",
        "5",
        env={"GRAFANA_URL": GRAFANA},
    )
    try:
        api = demo.api
        # Enough demo traffic for every page: replies, cron runs, remembered facts.
        poll(
            lambda: len(api.get("/job-executions", params={"hours": 1}).json()) >= 3,
            120,
            "three cron runs",
        )
        poll(
            lambda: (
                {m["queue_name"] for m in api.get("/queue-stats/messages").json()}
                >= {"to_secretary", "to_telegram"}
            ),
            60,
            "messages on both queues",
        )
        yield _seed_hostile_records(demo)
    finally:
        code = demo.stop(timeout=120)
        assert code == 0, demo.stdout


class BrowserLost(UserWarning):
    """The browser process went away during the session and was relaunched."""


def _start_playwright(log: Path) -> Any:
    """Start Playwright's driver with its stderr on ``log`` and ``pw:browser`` debugging on.

    The driver copies the browser's stderr and exit status to its own stderr on that
    channel. It inherits the environment and, as its stderr, the descriptor behind
    ``sys.stderr`` (under pytest's capture that is not descriptor 2), so both are swapped
    only around the spawn, and this process's stderr and environment stay as they were.
    """
    import sys

    from playwright.sync_api import sync_playwright

    log.parent.mkdir(parents=True, exist_ok=True)
    saved_debug = os.environ.get("DEBUG")
    saved_stderr = sys.stderr
    os.environ["DEBUG"] = "pw:browser"
    with log.open("w") as sink:
        try:
            sys.stderr = sink
            return sync_playwright().start()
        finally:
            sys.stderr = saved_stderr
            if saved_debug is None:
                del os.environ["DEBUG"]
            else:
                os.environ["DEBUG"] = saved_debug


def browser_log_tail(log: Path, lines: int = 20) -> str:
    """The lines of the browser log that say how the process ended, without the D-Bus noise
    a container without a session bus produces on every launch."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no browser log at {log})"
    kept = [
        line
        for line in text.splitlines()
        if ("[err]" in line or "<process did exit" in line or "<launched>" in line)
        and "dbus" not in line
    ]
    return "\n".join(kept[-lines:]) or "(the browser log has no stderr lines)"


class Chromium:
    """Debian's chromium under Playwright: one process per module, relaunched when lost."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.launches = 0
        self.lost: list[str] = []  # one report per browser process that went away
        self._playwright = _start_playwright(log)
        self._browser: Any = None

    @property
    def pid(self) -> int:
        """The process id of the last launch, as Playwright logged it."""
        pids = re.findall(r"<launched> pid=(\d+)", self.log.read_text(errors="replace"))
        return int(pids[-1])

    def current(self) -> Any:
        """The running browser; a new one if the last one's process is gone."""
        if self._browser is not None and not self._browser.is_connected():
            report = (
                f"chromium went away after launch {self.launches}; relaunching. "
                f"Log {self.log}:\n{browser_log_tail(self.log)}"
            )
            self.lost.append(report)
            warnings.warn(BrowserLost(report), stacklevel=2)
            self._browser = None
        if self._browser is None:
            self._browser = self._playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS
            )
            self.launches += 1
        return self._browser

    def close(self) -> None:
        try:
            if self._browser is not None and self._browser.is_connected():
                self._browser.close()
        finally:
            self._playwright.stop()


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Chromium]:
    """Per module, not per session: while Playwright's sync API is open its event loop is
    the running loop of the main thread, and every asyncio test after it would fail."""
    chromium = Chromium(BROWSER_LOGS / f"{request.module.__name__.rsplit('.', 1)[-1]}.log")
    try:
        yield chromium
    finally:
        chromium.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here runs once more if, and only if, it failed because the browser
    process was lost (Playwright's ``TargetClosedError``); see the module docstring."""
    # By name: Playwright raises the class but exports it only from a private module.
    lost = pytest.mark.flaky(reruns=1, only_rerun=[r"^TargetClosedError: "])
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(lost)


@dataclass
class Tab:
    """One browser context + page, recording dialogs and console output."""

    page: Any
    site: Site
    dialogs: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def go(self, path: str) -> Any:
        return self.page.goto(self.site.url + path)

    def login(self, token: str | None = None) -> None:
        self.go("/admin/login")
        self.page.fill("input[name=token]", token or self.site.token)
        self.page.click("form[action='/admin/login'] button[type=submit]")
        self.page.wait_for_load_state()

    def shot(self, name: str, full_page: bool = False, docs: bool = False) -> None:
        """Save what the operator sees (the window; the whole page when asked).

        ``docs=True`` marks a picture the documentation shows: it is copied over
        docs/screenshots/ only when ``OTEL_ASSIST_DOC_SCREENSHOTS=1``, so a test run does
        not rewrite tracked files (every run's pixels differ: clocks, demo data).
        """
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        if docs and os.environ.get("OTEL_ASSIST_DOC_SCREENSHOTS") == "1":
            DOC_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOC_SCREENSHOTS / path.name)


@pytest.fixture
def tab(browser: Chromium, site: Site) -> Iterator[Tab]:
    context = browser.current().new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    t = Tab(page, site)
    page.on("dialog", lambda d: (t.dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: t.console.append(m.text))
    yield t
    if context.browser is not None and context.browser.is_connected():
        context.close()  # a lost browser took its contexts with it


@pytest.fixture
def admin(tab: Tab) -> Tab:
    tab.login()
    return tab
