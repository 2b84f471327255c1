"""The admin pages against a running ``otel-assist demo`` (embedded Redis and SQLite), plus
a few crafted records with hostile content, driven by Debian's chromium through Playwright.

No browser is downloaded: Playwright launches /usr/bin/chromium. Screenshots of each page
go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import datetime as dt
import uuid
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
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Per module, not per session: while Playwright's sync API is open its event loop is
    the running loop of the main thread, and every asyncio test after it would fail."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


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

    def shot(self, name: str, full_page: bool = False) -> None:
        """Save what the operator sees (the window; the whole page when asked)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


@pytest.fixture
def tab(browser: Any, site: Site) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    t = Tab(page, site)
    page.on("dialog", lambda d: (t.dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: t.console.append(m.text))
    yield t
    context.close()


@pytest.fixture
def admin(tab: Tab) -> Tab:
    tab.login()
    return tab
