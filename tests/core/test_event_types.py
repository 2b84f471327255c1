"""The LogEventType vocabulary, the library's own event lines, callsite fields on
WARNING+, and set_correlation_id as the seed plan uses it (docs/event-types.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import otel_assist
from otel_assist import correlation
from otel_assist.event_types import (
    DEFAULT_INFO,
    LIBRARY_EVENTS,
    VOCABULARY,
    LogEventType,
    info_events,
)
from otel_assist.logs.configure import get_logger
from otel_assist.metrics import instruments as metrics
from otel_assist.settings import ConfigurationError
from otel_assist.testing import Capture
from otel_assist.web.asgi import instrument_app

REPO = Path(__file__).resolve().parents[2]
PLAN = [
    *("request_in", "request_out", "response", "job_start", "job_end", "job_error"),
    *("queue_push", "queue_pop", "tool_call", "tool_result", "llm_call", "llm_response"),
    *("memory_save", "memory_retrieve", "error", "warning", "info", "debug"),
]

# Text at its nastiest: lone surrogates, control characters, huge strings.
nasty_text = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec=None, categories=None)),
    st.sampled_from(["\udcff", "\x00", "\r\n", "a" * 100_000, "critical", *PLAN]),
)
# Lone surrogates in a logged value still make the JSON fallback raise (issue 10 defect 1,
# fixed in logs.py by the logs work, not here): the logged values leave them out until then.
loggable_text = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=("Cs",))),
    st.sampled_from(["\x00", "\r\n", "a" * 100_000, "critical", *PLAN]),
)
odd_values = st.one_of(
    loggable_text,
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=64),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.lists(st.integers(), max_size=3),
    st.none(),
)


@pytest.fixture
def capture(monkeypatch: pytest.MonkeyPatch) -> Iterator[Capture]:
    monkeypatch.delenv("OTEL_ASSIST_LOG_EVENTS", raising=False)
    cap = Capture("events_service")
    try:
        yield cap
    finally:
        cap.close()


def lines_of(cap: Capture, event_type: str) -> list[dict[str, Any]]:
    return [ln for ln in cap.json_lines() if ln.get("event_type") == event_type]


# --------------------------------------------------------------------------- vocabulary


def test_the_vocabulary_is_the_plans_and_exported() -> None:
    assert [e.value for e in otel_assist.LogEventType] == PLAN
    assert otel_assist.LogEventType is LogEventType


def test_dashboards_offer_exactly_the_vocabulary() -> None:
    found = 0
    for path in (REPO / "monitoring" / "grafana" / "dashboards").glob("*.json"):
        for var in json.loads(path.read_text()).get("templating", {}).get("list", []):
            if var.get("name") == "event_type":
                found += 1
                assert var["query"].split(",") == PLAN, path.name
    assert found >= 1


def test_docs_table_lists_every_library_event() -> None:
    doc = (REPO / "docs" / "event-types.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \|", doc, flags=re.MULTILINE))
    assert set(rows) == VOCABULARY
    for event in LIBRARY_EVENTS:
        on = rows[event.value].strip().startswith("INFO")
        assert on == (event in DEFAULT_INFO), (event, rows[event.value])


# --------------------------------------------------------------------------- switch


def test_log_events_setting() -> None:
    assert info_events({}) == DEFAULT_INFO
    assert info_events({"OTEL_ASSIST_LOG_EVENTS": "all"}) == LIBRARY_EVENTS
    assert info_events({"OTEL_ASSIST_LOG_EVENTS": "none"}) == frozenset()
    assert info_events({"OTEL_ASSIST_LOG_EVENTS": " queue_push, QUEUE_POP "}) == {
        LogEventType.QUEUE_PUSH,
        LogEventType.QUEUE_POP,
    }
    with pytest.raises(ConfigurationError, match=r"OTEL_ASSIST_LOG_EVENTS.*job_start"):
        info_events({"OTEL_ASSIST_LOG_EVENTS": "queue_push,job_start"})


@given(nasty_text)
def test_log_events_setting_never_misparses(raw: str) -> None:
    try:
        chosen = info_events({"OTEL_ASSIST_LOG_EVENTS": raw})
    except ConfigurationError as exc:
        assert "OTEL_ASSIST_LOG_EVENTS" in str(exc)
    else:
        assert chosen <= LIBRARY_EVENTS


# --------------------------------------------------------------------------- emission


def test_llm_tool_and_memory_helpers_log_their_events(capture: Capture) -> None:
    with metrics.llm_call("gpt-x") as call:
        call.tokens(input_tokens=12, output_tokens=3)
    with pytest.raises(KeyError), metrics.tool_call("calendar"):
        raise KeyError("missing")
    metrics.record_memory_operation("save", user_id=7)
    metrics.record_memory_operation("search", count=2)
    metrics.record_memory_operation("delete")
    [llm_in] = lines_of(capture, "llm_call")
    [llm_out] = lines_of(capture, "llm_response")
    assert llm_in["model"] == "gpt-x" and llm_out["usage_input"] == 12
    assert llm_out["status"] == "success" and llm_out["level"] == "info"
    [tool_in] = lines_of(capture, "tool_call")
    [tool_out] = lines_of(capture, "tool_result")
    assert tool_in["tool_name"] == "calendar"
    assert tool_out["status"] == "error" and tool_out["error_type"] == "KeyError"
    [save] = lines_of(capture, "memory_save")
    [search] = lines_of(capture, "memory_retrieve")
    assert save["user_id"] == 7 and search["count"] == 2
    # user_id rides on the line, never on the metric
    assert capture.metric_value("memory_operations", operation="save") == 1
    for point in capture.metric_points("memory_operations"):
        assert "user_id" not in (point.attributes or {})
    # every line the helpers wrote is in the vocabulary
    assert capture.metric_value("log_unknown_event_types") == 0


def test_per_request_events_are_debug_by_default(capture: Capture) -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    instrument_app(app, access_log=False)

    async def call() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/items/3")).status_code == 200

    asyncio.run(call())
    assert lines_of(capture, "request_in") == []  # DEBUG: below the default level


def test_request_in_and_out_when_switched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_ASSIST_LOG_EVENTS", "request_in,request_out")
    cap = Capture("events_service")
    try:
        app = FastAPI()

        @app.get("/ping")
        async def ping() -> dict[str, str]:
            return {"ok": "yes"}

        instrument_app(app, access_log=True)
        server, url = serve_once()
        try:

            async def call() -> None:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    await c.get("/ping", headers={"x-correlation-id": "req-42"})

            asyncio.run(call())
            with correlation.correlation_scope("out-7"), httpx.Client() as client:
                assert client.get(f"{url}/secret/path?token=abc").status_code == 204
        finally:
            server.shutdown()
        [req_in] = lines_of(cap, "request_in")
        assert req_in["correlation_id"] == "req-42" and req_in["http_method"] == "GET"
        [resp] = lines_of(cap, "response")  # the access log line
        assert resp["correlation_id"] == "req-42" and resp["status_code"] == 200
        # the ASGI test client is an httpx client too: its call to "t" is logged as well
        [out] = [ln for ln in lines_of(cap, "request_out") if ln["server_address"] != "t"]
        assert out["status_code"] == 204 and out["server_address"] == "127.0.0.1"
        assert out["correlation_id"] == "out-7"
        assert "token" not in json.dumps(out) and "secret" not in json.dumps(out)
    finally:
        cap.close()


def serve_once() -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# --------------------------------------------------------------------------- unknown types


def test_unknown_event_type_is_kept_and_counted(capture: Capture) -> None:
    log = get_logger("events.test")
    log.info("made up", event_type="made_up")
    log.critical("very bad")
    log.info("plain")
    [made_up] = [ln for ln in capture.json_lines() if ln["event"] == "made up"]
    assert made_up["event_type"] == "made_up"
    [critical] = [ln for ln in capture.json_lines() if ln["event"] == "very bad"]
    assert critical["event_type"] == "error"  # the level's default, in the vocabulary
    assert capture.metric_value("log_unknown_event_types") == 1


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=odd_values)
def test_any_event_type_value_gives_one_line_and_a_fair_count(capture: Capture, value: Any) -> None:
    before_lines = len(capture.json_lines())
    before = capture.metric_value("log_unknown_event_types")
    get_logger("events.prop").info("odd", event_type=value)
    assert len(capture.json_lines()) == before_lines + 1
    counted = capture.metric_value("log_unknown_event_types") - before
    known = isinstance(value, str) and value in VOCABULARY
    assert counted == (0 if known or value is None else 1)


# --------------------------------------------------------------------------- callsite


def test_callsite_fields_on_warning_and_above_by_default(capture: Capture) -> None:
    log = get_logger("events.callsite")
    log.info("quiet line")
    log.warning("loud line")
    logging.getLogger("events.stdlib").error("stdlib loud")
    by_event = {ln["event"]: ln for ln in capture.json_lines()}
    assert "lineno" not in by_event["quiet line"]
    loud = by_event["loud line"]
    assert loud["filename"] == "test_event_types.py"
    assert loud["func_name"] == "test_callsite_fields_on_warning_and_above_by_default"
    assert by_event["stdlib loud"]["filename"] == "test_event_types.py"
    [record] = capture.log_records(event="loud line")
    assert record["code.function"] == loud["func_name"]


def test_callsite_switch_puts_them_on_every_line() -> None:
    cap = Capture("events_service", log_callsite=True)
    try:
        get_logger("events.callsite").info("quiet line")
        [line] = [ln for ln in cap.json_lines() if ln["event"] == "quiet line"]
        assert line["func_name"] == "test_callsite_switch_puts_them_on_every_line"
    finally:
        cap.close()


# --------------------------------------------------------------------------- correlation


def test_set_correlation_id_sets_it_and_its_token_restores() -> None:
    assert correlation.get_correlation_id() is None
    token = otel_assist.set_correlation_id("abc")
    try:
        assert otel_assist.get_correlation_id() == "abc"
        inner = otel_assist.set_correlation_id("def")
        assert otel_assist.get_correlation_id() == "def"
        otel_assist.reset_correlation_id(inner)
        assert otel_assist.get_correlation_id() == "abc"
    finally:
        otel_assist.reset_correlation_id(token)
    assert correlation.get_correlation_id() is None
    # The context-returning form attaches nothing.
    ctx = otel_assist.context_with_correlation_id("xyz")
    assert correlation.get_correlation_id(ctx) == "xyz"
    assert correlation.get_correlation_id() is None


@given(nasty_text)
def test_set_correlation_id_never_lets_a_bad_id_in(value: str) -> None:
    token = correlation.set_correlation_id(value)
    try:
        current = correlation.get_correlation_id()
        assert correlation.is_valid(current)
        assert current == value or not correlation.is_valid(value)
    finally:
        correlation.reset_correlation_id(token)
    assert correlation.get_correlation_id() is None
