"""The admin Logs page and the correlation timeline, over the real app (SQLite) and the Loki
stand-in (tests/loki/standin.py) on a real port; and the LogQL builder fuzzed for injection.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rest_service import timeline
from rest_service.loki import InvalidFilter, LogFilter, LokiClient, LokiUnavailable, parse_streams
from tests import servers
from tests.loki import logql
from tests.loki.otlp import push, record, request
from tests.loki.standin import LokiStandIn
from tests.rest_service.conftest import API, Running, make_settings, start

CID = "cid-timeline-0001"
NASTY = st.text(
    alphabet=st.sampled_from([*'"`|}{\\\n\r\t\x00=~!()[],. aZ9_:-', "\udcff", "\u2028", "é", "💥"]),
    max_size=40,
)


@pytest.fixture
def loki() -> Iterator[LokiStandIn]:
    stand_in = LokiStandIn().start()
    yield stand_in
    stand_in.stop()


async def login(client: httpx.AsyncClient, token: str) -> None:
    form = await client.get("/admin/login")
    nonce = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
    assert nonce, form.text[:500]
    resp = await client.post(
        "/admin/login",
        data={"token": token, "login_csrf": nonce.group(1), "next": "/admin/logs"},
        headers={"Origin": "http://rest"},
    )
    assert resp.status_code == 303, resp.text[:500]


async def admin_app(sqlite_url: str, **overrides: Any) -> AsyncIterator[Running]:
    async for running in start(make_settings(sqlite_url, **overrides)):
        from tests.rest_service.conftest import TOKEN

        await login(running.client, TOKEN)
        yield running


@pytest.fixture
async def app(sqlite_url: str, loki: LokiStandIn) -> AsyncIterator[Running]:
    async for running in admin_app(
        sqlite_url,
        loki_url=loki.url,
        loki_org_id="tenant-a",
        loki_username="reader",
        loki_password="s3cret-pw",
    ):
        yield running


def seed_lines(loki: LokiStandIn, n: int = 5, service: str = "assistant_service") -> None:
    now = time.time_ns()
    records = [
        record(
            f"handled message {i}",
            severity=(9, 13, 17, 21, 5)[i % 5],
            attrs={"event_type": "llm_call", "correlation_id": f"c-{i % 3}", "user_id": 7 + i % 2},
            ts_ns=now - (n - i) * 10**6,
        )
        for i in range(n)
    ]
    status, text = push(loki, request(records, service=service))
    assert status == 200, text


# --------------------------------------------------------------------------- Logs page


async def test_logs_page_lists_loki_lines_newest_first(app: Running, loki: LokiStandIn) -> None:
    seed_lines(loki, 5)
    seed_lines(loki, 2, service="telegram_bot_service")
    page = (await app.client.get("/admin/logs")).text
    lines = re.findall(r"<summary>handled message (\d)</summary>", page)
    assert lines == ["1", "0", "4", "3", "2", "1", "0"]  # newest first across services
    assert '<span class="badge lvl-warn">warning</span>' in page
    assert '<span class="badge lvl-fatal">critical</span>' in page
    assert 'href="/admin/correlation/c-1"' in page
    # The stand-in saw the tenant header and basic auth; the password is not on the page.
    sent = loki.query_headers[-1]
    assert sent["x-scope-orgid"] == "tenant-a"
    assert sent["authorization"] == "Basic " + base64.b64encode(b"reader:s3cret-pw").decode()
    assert "s3cret-pw" not in page


async def test_logs_page_filters(app: Running, loki: LokiStandIn) -> None:
    seed_lines(loki, 10)
    seed_lines(loki, 3, service="telegram_bot_service")

    async def shown(**params: str) -> list[str]:
        resp = await app.client.get("/admin/logs", params=params)
        assert resp.status_code == 200
        assert 'class="error"' not in resp.text, resp.text
        return re.findall(r"<summary>handled message (\d)</summary>", resp.text)

    assert await shown(service="telegram_bot_service") == ["2", "1", "0"]
    assert await shown(service="assistant_service", level="fatal") == ["8", "3"]
    assert await shown(service="assistant_service", level="warn") == ["6", "1"]
    assert await shown(service="assistant_service", correlation_id="c-2") == ["8", "5", "2"]
    assert await shown(service="assistant_service", user_id="8") == ["9", "7", "5", "3", "1"]
    assert await shown(service="assistant_service", text="message 9") == ["9"]
    assert await shown(text="no such text") == []


async def test_logs_page_pages_back_in_time(app: Running, loki: LokiStandIn) -> None:
    seed_lines(loki, 150)
    first = (await app.client.get("/admin/logs")).text
    assert len(re.findall(r"<summary>handled message", first)) == 100
    older = re.search(r'<a href="(/admin/logs\?[^"]*before=\d+[^"]*)">older', first)
    assert older, "no link to older lines"
    second = (await app.client.get(older.group(1).replace("&amp;", "&"))).text
    assert len(re.findall(r"<summary>handled message", second)) == 50
    assert "older →" not in second and "← newest" in second


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"service": 'x"} |= "'}, "service names use"),
        ({"level": "warning"}, "level must be one of"),
        ({"correlation_id": "a b"}, "correlation_id uses"),
        ({"user_id": "1e9"}, "user_id must be a whole number"),
        ({"user_id": str(2**64)}, "user_id"),
        ({"text": "two\nlines"}, "text must be one line"),
        ({"text": "x" * 200}, "text is longer than"),
        ({"range": "30d"}, "range must be one of"),
        ({"before": "12"}, "before is outside"),
    ],
)
async def test_bad_filters_are_named_not_500(
    app: Running, params: dict[str, str], message: str
) -> None:
    resp = await app.client.get("/admin/logs", params=params)
    assert resp.status_code == 200
    assert message in resp.text


async def test_loki_not_configured_or_down_is_a_notice(sqlite_url: str) -> None:
    async for running in admin_app(sqlite_url):
        resp = await running.client.get("/admin/logs")
        assert resp.status_code == 200
        assert "Loki is not configured: set LOKI_URL" in resp.text
    down = LokiStandIn()  # a port nothing listens on
    async for running in admin_app(sqlite_url, loki_url=down.url):
        resp = await running.client.get("/admin/logs")
        assert resp.status_code == 200
        assert f"Loki at {down.url} is not reachable" in resp.text


async def test_loki_refusal_is_shown_not_500(sqlite_url: str, loki: LokiStandIn) -> None:
    loki.stop()
    # Something else answering on LOKI_URL (a proxy's error page) is a notice too.
    async for running in admin_app(sqlite_url, loki_url="http://127.0.0.1:9/"):
        resp = await running.client.get("/admin/logs", params={"service": "a"})
        assert resp.status_code == 200 and "not reachable" in resp.text


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(service=NASTY, level=NASTY, cid=NASTY, user=NASTY, text=NASTY)
async def test_hostile_filters_never_500(
    app: Running, service: str, level: str, cid: str, user: str, text: str
) -> None:
    params = {"service": service, "level": level, "correlation_id": cid}
    params |= {"user_id": user, "text": text}
    resp = await app.client.get(
        "/admin/logs", params={k: v.encode("utf-8", "replace").decode() for k, v in params.items()}
    )
    assert resp.status_code == 200


@settings(max_examples=400)
@given(service=NASTY, level=NASTY, cid=NASTY, user=NASTY, text=NASTY)
def test_no_logql_injection(service: str, level: str, cid: str, user: str, text: str) -> None:
    """Whatever the filters hold, the query is either refused with a message naming the
    field, or it is the fixed shape with each value exactly as given."""
    try:
        f = LogFilter.parse(
            service=service, level=level, correlation_id=cid, user_id=user, text=text
        )
    except InvalidFilter as exc:
        assert re.match(r"(service|level|correlation_id|user_id|text|range)\b", str(exc))
        return
    expr = logql.parse(f.logql())  # the stand-in's parser: Loki's string rules
    assert isinstance(expr, logql.LogQuery)
    assert len(expr.selector) == 1 and expr.selector[0].name == "service_name"
    expected_stages = [
        ("detected_level", f.level),
        ("correlation_id", f.correlation_id),
        ("user_id", None if f.user_id is None else str(f.user_id)),
    ]
    labels = [(s.matcher.name, s.matcher.value) for s in expr.stages if hasattr(s, "matcher")]
    assert labels == [(k, v) for k, v in expected_stages if v is not None]
    lines = [s for s in expr.stages if isinstance(s, logql.LineFilter)]
    assert [(s.op, s.value) for s in lines] == ([("|=", f.text)] if f.text else [])
    if f.text:
        assert f.text == text.strip()


# --------------------------------------------------------------------------- timeline


async def seed_history(running: Running, at: datetime) -> None:
    def iso(offset_s: float) -> str:
        return (at + timedelta(seconds=offset_s)).isoformat()

    msgs = [
        ("push", "to_secretary", "m1", 0.0, "telegram"),
        ("pop", "to_secretary", "m1", 6.5, None),
        ("push", "to_telegram", "m2", 8.0, "assistant"),
        ("pop", "to_telegram", "m2", 8.4, None),
    ]
    events = []
    for direction, queue, mid, offset, source in msgs:
        event: dict[str, Any] = {
            "event_id": f"{mid}:{direction}",
            "message_id": mid,
            "queue_name": queue,
            "direction": direction,
            "message_type": "user_message",
            "user_id": 7,
            "correlation_id": CID,
            "payload": {"text": "hi"},
        }
        if source:
            event["source"] = source
        event["enqueued_at" if direction == "push" else "dequeued_at"] = iso(offset)
        events.append(event)
    resp = await running.client.post(f"{API}/queue-stats/messages/batch", json={"events": events})
    assert resp.status_code == 200, resp.text
    base = {"run_id": "run-tl-1", "job_id": "memory_extraction", "job_type": "memory_extraction"}
    resp = await running.client.post(
        f"{API}/job-executions/events",
        json={
            "events": [
                {**base, "event_id": "r:s", "kind": "started", "at": iso(7.0),
                 "correlation_id": CID, "job_name": "memory extraction"},
                {**base, "event_id": "r:f", "kind": "completed", "at": iso(7.9),
                 "duration_ms": 900},
            ]
        },
    )  # fmt: skip
    assert resp.status_code == 200, resp.text


def seed_cid_lines(loki: LokiStandIn, at: datetime) -> None:
    base_ns = int(at.timestamp() * 1e9)
    for service, offset, text in (
        ("telegram_bot_service", 0.1, "user message received"),
        ("assistant_service", 6.6, "message picked up"),
        ("assistant_service", 7.5, "llm call done"),
        ("telegram_bot_service", 8.5, "reply sent"),
    ):
        rec = record(text, attrs={"correlation_id": CID}, ts_ns=base_ns + int(offset * 1e9))
        assert push(loki, request([rec], service=service))[0] == 200


async def test_timeline_orders_loki_lines_queue_hops_and_jobs(
    app: Running, loki: LokiStandIn
) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    await seed_history(app, at)
    seed_cid_lines(loki, at)
    tl = await timeline.build(CID, app.db, LokiClient(app.app.state.settings))
    assert tl.notice is None
    assert [(e.kind, e.lane) for e in tl.events] == [
        ("push", "queue to_secretary"),
        ("log", "telegram_bot_service"),
        ("pop", "queue to_secretary"),
        ("log", "assistant_service"),
        ("job", "job memory_extraction"),
        ("log", "assistant_service"),
        ("push", "queue to_telegram"),
        ("pop", "queue to_telegram"),
        ("log", "telegram_bot_service"),
    ]
    pop = tl.events[2]
    assert pop.duration_s == pytest.approx(6.5)  # the wait in to_secretary
    assert pop.gap_s == pytest.approx(6.4)
    assert tl.longest_gap is pop
    assert tl.total_s == pytest.approx(8.5)
    bars = {b.lane: (round(b.start_s, 2), round(b.end_s, 2)) for b in tl.bars}
    assert bars["queue to_secretary"] == (0.0, 6.5)
    assert bars["job memory_extraction"] == (7.0, 7.9)
    assert bars["assistant_service"] == (6.6, 7.5)

    page = (await app.client.get(f"/admin/correlation/{CID}")).text
    assert page.count("<rect") == len(tl.bars) == 5
    assert "6.50 s wait" in page and "longest gap" in page
    assert page.index("user message received") < page.index("reply sent")


async def test_timeline_with_loki_down_shows_postgres_part(app: Running, loki: LokiStandIn) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    await seed_history(app, at)
    loki.stop()
    resp = await app.client.get(f"/admin/correlation/{CID}")
    assert resp.status_code == 200
    assert "Log lines are not shown: Loki at" in resp.text
    assert "push to_secretary" in resp.text and "memory extraction" in resp.text
    assert "user message received" not in resp.text


async def test_timeline_unknown_or_invalid_id(app: Running) -> None:
    resp = await app.client.get("/admin/correlation/nothing-here")
    assert resp.status_code == 200 and "Nothing recorded with this correlation_id" in resp.text
    resp = await app.client.get("/admin/correlation/bad%20id%22")
    assert resp.status_code == 404


# --------------------------------------------------------------------------- the CLI


def follow(cid: str, database_url: str, loki_url: str | None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": database_url,
        "COLUMNS": "200",
        "OTEL_SDK_DISABLED": "true",
    }
    if loki_url:
        env["LOKI_URL"] = loki_url
    cli = str(Path(sys.executable).with_name("otel-assist"))
    return subprocess.run([cli, "follow", cid], env=env, capture_output=True, text=True, timeout=60)


async def test_follow_prints_the_same_timeline(
    app: Running, loki: LokiStandIn, sqlite_url: str
) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    await seed_history(app, at)
    seed_cid_lines(loki, at)
    done = await asyncio.to_thread(follow, CID, sqlite_url, loki.url)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "9 events over 8.50 s; longest gap 6.40 s" in out, out
    for lane in ("queue to_secretary", "job memory_extraction", "assistant_service"):
        assert lane in out
    assert "6.50 s wait" in out and "█" in out
    assert out.index("user message received") < out.index("llm call done") < out.index("reply sent")

    loki.stop()
    down = await asyncio.to_thread(follow, CID, sqlite_url, loki.url)
    assert down.returncode == 0, down.stderr
    assert "Log lines are not shown: Loki at" in down.stdout
    assert "push to_secretary" in down.stdout and "user message received" not in down.stdout

    bad = await asyncio.to_thread(follow, 'x"}', sqlite_url, None)
    assert bad.returncode == 2 and "letters, digits" in bad.stdout


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@settings(max_examples=300)
@given(
    payload=st.one_of(
        _JSON,
        st.fixed_dictionaries(
            {
                "data": st.fixed_dictionaries(
                    {
                        "resultType": st.sampled_from(["streams", "matrix", 3]),
                        "result": st.lists(
                            st.fixed_dictionaries(
                                {"stream": _JSON, "values": st.lists(st.lists(_JSON))}
                            ),
                            max_size=3,
                        ),
                    }
                )
            }
        ),
    )
)
def test_any_answer_from_loki_is_lines_or_a_clear_error(payload: Any) -> None:
    """Whatever sits at LOKI_URL answers, parsing gives lines or LokiUnavailable."""
    try:
        lines = parse_streams(payload)
    except LokiUnavailable as exc:
        assert str(exc)
        return
    assert all(isinstance(line.line, str) for line in lines)
    assert [line.ts_ns for line in lines] == sorted((line.ts_ns for line in lines), reverse=True)


async def test_timeline_on_postgres(postgres: servers.Postgres, loki: LokiStandIn) -> None:
    """The same timeline from the real Postgres (the other tests use SQLite)."""
    url = postgres.create_database(f"tl_{uuid.uuid4().hex[:12]}")
    async for running in admin_app(url, loki_url=loki.url):
        at = datetime.now(UTC) - timedelta(minutes=5)
        await seed_history(running, at)
        seed_cid_lines(loki, at)
        tl = await timeline.build(CID, running.db, LokiClient(running.app.state.settings))
        assert [e.kind for e in tl.events] == [
            "push", "log", "pop", "log", "job", "log", "push", "pop", "log"
        ]  # fmt: skip
        assert tl.events[2].duration_s == pytest.approx(6.5)
        assert tl.total_s == pytest.approx(8.5)


async def test_credentials_in_loki_url_never_shown(sqlite_url: str) -> None:
    down = LokiStandIn()  # nothing listens
    url = down.url.replace("http://", "http://reader:pw-in-url@")
    async for running in admin_app(sqlite_url, loki_url=url, loki_password="pw-in-setting"):
        page = (await running.client.get("/admin/logs")).text
        assert f"Loki at {down.url} is not reachable" in page
        assert "pw-in-url" not in page and "pw-in-setting" not in page
