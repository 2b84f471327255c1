"""Operator journeys through the admin pages in a real browser, on live demo data."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.browser.conftest import GRAFANA, Site, Tab
from tests.polling import poll

pytestmark = pytest.mark.browser


def test_request_without_session_goes_to_login_and_back(tab: Tab) -> None:
    tab.go("/admin/memory?user_id=4242")
    url = urlsplit(tab.page.url)
    assert url.path == "/admin/login"
    assert parse_qs(url.query)["next"] == ["/admin/memory?user_id=4242"]
    tab.shot("login")
    # A wrong token stays on the login page with a message, and sets no session.
    tab.page.fill("input[name=token]", "not-the-token")
    tab.page.click("button[type=submit]")
    assert tab.page.get_by_role("alert").inner_text() == "That token is not valid for rest_service."
    assert not [c for c in tab.page.context.cookies() if c["name"] == "otel_assist_admin"]
    tab.page.fill("input[name=token]", tab.site.token)
    tab.page.click("button[type=submit]")
    tab.page.wait_for_load_state()
    assert urlsplit(tab.page.url).path == "/admin/memory"
    assert "user_id=4242" in tab.page.url
    cookie = next(c for c in tab.page.context.cookies() if c["name"] == "otel_assist_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["expires"] > 0
    assert tab.site.token not in cookie["value"]
    # Logging out ends the session.
    tab.page.click("form.logout button")
    tab.page.wait_for_load_state()
    tab.go("/admin/jobs")
    assert urlsplit(tab.page.url).path == "/admin/login"


def test_jobs_page_stats_filters_and_detail(admin: Tab) -> None:
    page = admin.page
    admin.go("/admin/jobs")
    cards = page.locator(".cards .stat")
    assert cards.count() >= 6
    total = int(page.locator(".cards .stat").first.locator("b").inner_text())
    assert total >= 4
    admin.shot("jobs")

    page.select_option("select[name=job_type]", "reminder")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    types = page.locator("table.runs tbody tr td:nth-child(3)").all_inner_texts()
    assert types and set(types) == {"reminder"}
    assert "job_type=reminder" in page.url

    page.select_option("select[name=hours]", "1")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    assert "hours=1" in page.url and "job_type=reminder" in page.url  # filters combine
    assert page.locator("select[name=hours] option[selected]").inner_text() == "last 1 h"
    assert page.locator("table.runs tbody tr td:nth-child(3)").count() >= 1

    page.select_option("select[name=job_type]", "")
    page.select_option("select[name=status]", "failed")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    rows = page.locator("table.runs tbody tr")
    assert rows.count() >= 1
    assert set(page.locator("table.runs .badge").all_inner_texts()) == {"failed"}
    assert rows.first.get_attribute("class") == "st-bad"  # failed rows are coloured

    # The crafted failed run: its detail shows error and traceback, as text.
    page.fill("input[name=correlation_id]", admin.site.failed_run_cid)
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    page.locator("table.runs tbody tr a").first.click()
    page.wait_for_load_state()
    assert re.search(r"/admin/jobs/[0-9a-f-]{36}$", page.url)
    assert (
        "ExtractionError: <b>bad</b> output <script>" in page.locator("pre.error-text").inner_text()
    )
    assert "Traceback (most recent call last)" in page.locator("pre.traceback").inner_text()
    assert page.locator("dd", has_text="812 ms").count() == 1
    assert page.locator("script").count() == 0
    assert admin.dialogs == []
    admin.shot("job-detail")


def test_queues_page_live_state_charts_and_filters(admin: Tab) -> None:
    page = admin.page
    admin.go("/admin/queues")
    live = page.locator(".cards .stat")
    names = " ".join(live.all_inner_texts())
    assert "to_secretary waiting" in names and "to_telegram waiting" in names
    assert page.locator("text=Live view unavailable").count() == 0  # Redis (embedded) is live
    charts = page.locator("figure.chart svg rect.bar")
    assert charts.count() >= 4  # by type and by source, both queues
    admin.shot("queues")

    page.select_option("select[name=queue]", "to_telegram")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    queues = page.locator("table.messages tbody tr td:nth-child(2)").all_inner_texts()
    assert queues and set(queues) == {"to_telegram"}

    page.select_option("select[name=queue]", "")
    page.fill("input[name=user_id]", "4242")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    users = page.locator("table.messages tbody tr td:nth-child(6)").all_inner_texts()
    assert users == ["4242"]

    page.fill("input[name=user_id]", "not-a-number")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    assert page.get_by_role("alert").inner_text() == "user_id must be a whole number"


def test_follow_correlation_id_from_message_to_reply(admin: Tab, site: Site) -> None:
    api = site.demo.api

    def answered() -> str | None:
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
        return replies[0] if replies else None

    cid = poll(answered, 60, "an answered user message")
    page = admin.page
    admin.go("/admin/queues")
    page.select_option("select[name=queue]", "to_secretary")
    page.fill("input[name=correlation_id]", cid)
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    page.locator("table.messages a.cid", has_text=cid).first.click()
    page.wait_for_load_state()
    assert urlsplit(page.url).path == f"/admin/correlation/{cid}"
    queues = set(page.locator("table.messages tbody tr td:nth-child(2)").all_inner_texts())
    assert queues == {"to_secretary", "to_telegram"}  # the message and the assistant's reply
    assert page.get_by_role("link", name="Its log lines in Grafana").count() == 1
    admin.shot("correlation")


def test_follow_correlation_id_from_job_to_its_messages(admin: Tab, site: Site) -> None:
    api = site.demo.api

    def reminder_with_messages() -> str | None:
        cids = {
            m["correlation_id"]
            for m in api.get(
                "/queue-stats/messages", params={"queue_name": "to_telegram", "limit": 1000}
            ).json()
            if m["source"] == "cron"
        }
        runs = api.get("/job-executions", params={"job_type": "reminder", "hours": 1}).json()
        found = [r["correlation_id"] for r in runs if r["correlation_id"] in cids]
        return found[0] if found else None

    cid = poll(reminder_with_messages, 60, "a reminder run that sent a message")
    page = admin.page
    admin.go(f"/admin/jobs?job_type=reminder&correlation_id={cid}")
    page.locator("table.runs a.cid", has_text=cid).first.click()
    page.wait_for_load_state()
    assert urlsplit(page.url).path == f"/admin/correlation/{cid}"
    assert page.locator("table.runs tbody tr td:nth-child(3)").all_inner_texts() == ["reminder"]
    sources = set(page.locator("table.messages tbody tr td:nth-child(5)").all_inner_texts())
    assert sources == {"cron"}


def test_memory_search_sort_and_delete_after_confirmation(admin: Tab, site: Site) -> None:
    page = admin.page
    admin.go("/admin/memory")
    page.select_option("select[name=user_id]", str(site.user_id))
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    facts = page.locator("table.facts td.fact").all_inner_texts()
    assert len(facts) == 3
    assert facts[0].startswith("quotes <script>")  # newest first, shown as text
    admin.shot("memory")

    page.select_option("select[name=sort]", "oldest")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("table.facts td.fact").first.inner_text() == "keep me: likes green tea"

    page.fill("input[name=q]", "WRONG")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("table.facts td.fact").all_inner_texts() == ["delete me: wrong city"]

    page.get_by_role("link", name="delete…").click()
    page.wait_for_load_state()
    assert page.locator("blockquote.fact").inner_text() == "delete me: wrong city"
    admin.shot("memory-confirm")
    page.get_by_role("button", name="Delete fact").click()
    page.wait_for_load_state()
    assert page.get_by_role("status").inner_text() == "Fact deleted."
    remaining = page.locator("table.facts td.fact").all_inner_texts()
    assert "delete me: wrong city" not in remaining and len(remaining) == 2
    resp = site.demo.api.get(f"/memories/{site.fact_ids['delete me']}")
    assert resp.status_code == 404


def test_script_in_payload_is_shown_as_text_and_never_runs(admin: Tab, site: Site) -> None:
    page = admin.page
    admin.go(f"/admin/queues?correlation_id={site.xss_cid}")
    row = page.locator("table.messages tbody tr")
    assert row.count() == 1
    row.locator("summary").click()
    payload = row.locator("pre").inner_text()
    assert "<script>window.__xss = 1; alert('xss')</script>" in payload
    assert '<img src=x onerror=\\"alert(2)\\">' in payload
    admin.shot("queues-hostile-payload")
    for path in (f"/admin/correlation/{site.xss_cid}", f"/admin/memory?user_id={site.user_id}"):
        admin.go(path)
        assert "<script>" in page.locator("main").inner_text()
    assert page.locator("script").count() == 0
    assert page.locator("main img").count() == 0
    assert page.evaluate("() => window.__xss") is None
    assert admin.dialogs == []


def test_logs_page_builds_grafana_links(admin: Tab) -> None:
    page = admin.page
    admin.go("/admin/logs")
    page.fill("input[name=service]", "otel-assist-demo")
    page.select_option("select[name=level]", "error")
    page.fill("input[name=correlation_id]", "abc123")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    query = '{service_name="otel-assist-demo"} | detected_level="error" | correlation_id="abc123"'
    assert page.locator("code.query").first.inner_text() == query
    explore = page.get_by_role("link", name="Logs in Grafana Explore").get_attribute("href")
    assert explore.startswith(GRAFANA + "/explore?")
    assert query in unquote(explore.replace("+", " ")).replace('\\"', '"')
    dashboard = page.get_by_role("link", name="Logs dashboard").get_attribute("href")
    assert dashboard.startswith(GRAFANA + "/d/otel-assist-logs/")
    assert "var-correlation_id=abc123" in dashboard and "var-level=error" in dashboard
    assert page.locator("ul.links a").count() >= 9
    admin.shot("logs")

    page.fill("input[name=service]", 'x"} |= "')
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    assert "service names use letters" in page.get_by_role("alert").inner_text()


def test_a_real_cron_failure_shows_its_traceback(admin: Tab, site: Site) -> None:
    """The demo's memory_extraction job fails now and then; its traceback travels through
    job tracking and the history shipper to this page."""
    api = site.demo.api

    def real_failure() -> str | None:
        runs = api.get(
            "/job-executions",
            params={"job_type": "memory_extraction", "status": "failed", "hours": 1},
        ).json()
        real = [r for r in runs if not (r["correlation_id"] or "").startswith("failed-run-")]
        return real[0]["id"] if real else None

    run_id = poll(real_failure, 120, "a failed memory_extraction run from the demo")
    admin.go(f"/admin/jobs/{run_id}")
    page = admin.page
    assert "ExtractionError" in page.locator("pre.error-text").inner_text()
    traceback = page.locator("pre.traceback").inner_text()
    assert "Traceback (most recent call last)" in traceback
    assert "_parse_extraction" in traceback and "JSONDecodeError" in traceback
    admin.shot("job-detail-demo")


def test_every_correlation_link_resolves_inside_its_page(admin: Tab) -> None:
    """As the browser resolves them (dot segments, %2F): each correlation link on the
    Queues and Jobs pages stays one segment under /admin/correlation/ (issue 10 §7)."""
    page = admin.page
    found = 0
    for path in ("/admin/queues", "/admin/jobs"):
        admin.go(path)
        hrefs = page.eval_on_selector_all(
            "a[href*='correlation']", "els => els.map(e => new URL(e.href).pathname)"
        )
        for resolved in hrefs:
            assert resolved.startswith("/admin/correlation/"), resolved
            assert "/" not in resolved.removeprefix("/admin/correlation/"), resolved
        found += len(hrefs)
    assert found > 0  # the demo's messages and runs carry correlation ids
