"""The admin Logs page and one request's timeline, in Debian's chromium (Playwright).

A demo (``otel-assist demo``) exports its log lines over OTLP to the Loki stand-in
(tests/loki/standin.py, the same OTLP ingest a Collector pushes to) and its rest_service
reads them back through Loki's query API (LOKI_URL). The screenshots docs/logs.md shows
are refreshed with OTEL_ASSIST_DOC_SCREENSHOTS=1 (see Tab.shot).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.conftest import GRAFANA, Site, Tab
from tests.demo_process import start_demo
from tests.loki.standin import LokiStandIn
from tests.polling import poll


@pytest.fixture(scope="module")
def loki() -> Iterator[LokiStandIn]:
    stand_in = LokiStandIn().start()
    yield stand_in
    stand_in.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, loki: LokiStandIn) -> Iterator[Site]:
    demo = start_demo(
        tmp_path_factory.mktemp("logs-demo"),
        "--rate",
        "4",
        "--seed",
        "11",
        env={
            "GRAFANA_URL": GRAFANA,
            "LOKI_URL": loki.url,
            "OTEL_EXPORTER_OTLP_ENDPOINT": loki.endpoint,
            "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_ASSIST_LOG_EXPORT_INTERVAL": "200",
        },
    )
    try:
        poll(lambda: len(loki.entries()) >= 50, 90, "50 demo log lines at the Loki stand-in")
        yield Site(demo, "", "", 0)
    finally:
        code = demo.stop(timeout=120)
        assert code == 0, demo.stdout


def answered_cid(site: Site) -> str:
    """A correlation id whose user message was answered (both queues, a reply)."""
    api = site.demo.api

    def find() -> str | None:
        pushed = [
            m
            for m in api.get("/queue-stats/messages", params={"limit": 1000}).json()
            if m["direction"] == "push"
        ]
        asked = {m["correlation_id"] for m in pushed if m["queue_name"] == "to_secretary"}
        replies = [
            m["correlation_id"]
            for m in pushed
            if m["queue_name"] == "to_telegram" and m["correlation_id"] in asked
        ]
        return replies[-1] if replies else None

    cid: str = poll(find, 60, "an answered user message")
    return cid


def test_logs_page_shows_loki_lines_filters_and_expands(admin: Tab, loki: LokiStandIn) -> None:
    page = admin.page
    admin.go("/admin/logs")
    rows = page.locator("table.loglines tbody tr")
    assert rows.count() >= 20
    assert page.get_by_role("status").count() == 0 or "not available" not in page.content()
    # Newest first: the times in the first column never go up.
    times = page.locator("table.loglines tbody tr td:first-child").all_inner_texts()
    assert times == sorted(times, reverse=True)

    # A level filter: the query uses Loki's value, the badges the familiar name.
    page.select_option("select[name=level]", "info")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    assert 'detected_level="info"' in page.locator("code.query").first.inner_text()
    badges = set(page.locator("table.loglines td span.badge").all_inner_texts())
    assert badges == {"info"}

    # Expand a line: its fields (structured metadata) show, the correlation id links on.
    first = page.locator("table.loglines details.fields").first
    first.locator("summary").click()
    assert first.locator("table.kv th", has_text="event_type").count() == 1
    admin.shot("logs-page", docs=True)
    link = page.locator("table.loglines a.timeline-link").first
    cid = link.inner_text()
    explore = page.get_by_role("link", name="Logs in Grafana Explore").get_attribute("href")
    assert explore.startswith(GRAFANA + "/explore?")
    panes = parse_qs(urlsplit(explore).query)["panes"][0]
    assert 'detected_level=\\"info\\"' in panes

    # Filter by that correlation id: every line shown carries it.
    page.fill("input[name=correlation_id]", cid)
    page.select_option("select[name=level]", "")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    shown = set(page.locator("table.loglines a.timeline-link").all_inner_texts())
    assert shown == {cid}

    # Hostile text is refused with a message naming the field, never a 500.
    page.fill("input[name=text]", 'a"} | json | b="')
    page.fill("input[name=correlation_id]", 'x"}')
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    assert "correlation_id uses letters" in page.get_by_role("alert").inner_text()
    assert admin.dialogs == []


def test_timeline_of_an_answered_message(admin: Tab, site: Site) -> None:
    cid = answered_cid(site)
    page = admin.page
    admin.go(f"/admin/logs?correlation_id={cid}")
    page.locator("table.loglines a.timeline-link", has_text=cid).first.click()
    page.wait_for_load_state()
    assert urlsplit(page.url).path == f"/admin/correlation/{cid}"
    lanes = page.locator("table.waterfall tbody tr td:first-child").all_inner_texts()
    assert {"queue to_secretary", "queue to_telegram"} <= set(lanes)
    assert page.locator("table.waterfall svg rect").count() == len(lanes)
    kinds = page.locator("table.timeline tbody tr").evaluate_all(
        "rows => rows.map(r => r.className.split(' ')[0])"
    )
    assert {"kind-push", "kind-pop", "kind-log"} <= set(kinds)
    # Time order: the "+since first" column never goes down.
    offsets = page.locator("table.timeline tbody tr td:nth-child(2)").all_inner_texts()
    assert offsets[0] == "+0 ms"
    assert "wait" in page.locator("table.timeline").inner_text()
    assert page.locator("p.loki-down").count() == 0
    admin.shot("timeline", docs=True)


def test_timeline_when_loki_is_down(admin: Tab, site: Site, loki: LokiStandIn) -> None:
    cid = answered_cid(site)
    loki.stop()
    try:
        admin.go(f"/admin/correlation/{cid}")
        notice = admin.page.locator("p.loki-down").inner_text()
        assert "Log lines are not shown: Loki at" in notice
        kinds: Any = admin.page.locator("table.timeline tbody tr").evaluate_all(
            "rows => rows.map(r => r.className.split(' ')[0])"
        )
        assert "kind-log" not in kinds and "kind-push" in kinds
        admin.go("/admin/logs")
        assert "Log lines are not available." in admin.page.locator("p.loki-down").inner_text()
        admin.shot("logs-loki-down", docs=True)
    finally:
        loki.start()
