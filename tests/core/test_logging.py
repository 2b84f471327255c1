"""Logging: one JSON line and exactly one OTel record per call, whichever path it came by."""

from __future__ import annotations

import logging

import structlog

from otel_assist.correlation import correlation_scope
from otel_assist.testing import Capture

SEED_FIELDS = {"timestamp", "level", "service", "event", "event_type", "correlation_id"}


def test_structlog_call_gives_one_line_and_one_record(otel_capture: Capture) -> None:
    log = structlog.get_logger()
    with correlation_scope("req-42"):
        log.info("user said hi", event_type="request_in", user_id=42, chars=2)
    lines = otel_capture.json_lines()
    assert len(lines) == 1
    line = lines[0]
    assert set(line) >= SEED_FIELDS
    assert line["service"] == "test_service"
    assert line["correlation_id"] == "req-42"
    assert line["user_id"] == 42 and line["event_type"] == "request_in"
    assert line["timestamp"].endswith("Z")
    records = otel_capture.log_records()
    assert len(records) == 1
    rec = records[0]
    assert rec["event"] == "user said hi"
    assert rec["severity"] == "INFO"
    assert rec["correlation_id"] == "req-42"
    assert rec["user_id"] == 42 and rec["event_type"] == "request_in" and rec["chars"] == 2
    assert rec["resource"]["service.name"] == "test_service"
    assert "service.instance.id" in rec["resource"]


def test_stdlib_library_logger_goes_through_same_processors(otel_capture: Capture) -> None:
    with correlation_scope("lib-1"):
        logging.getLogger("uvicorn.error").warning("port %d busy", 8000)
        logging.getLogger("sqlalchemy").error("connection lost")
    lines = otel_capture.json_lines()
    assert [line["event"] for line in lines] == ["port 8000 busy", "connection lost"]
    assert all(set(line) >= SEED_FIELDS for line in lines)
    assert lines[0]["logger"] == "uvicorn.error" and lines[0]["level"] == "warning"
    assert lines[0]["correlation_id"] == "lib-1"
    records = otel_capture.log_records()
    assert [r["event"] for r in records] == ["port 8000 busy", "connection lost"]
    assert [r["severity"] for r in records] == ["WARN", "ERROR"]


def test_secrets_masked_in_both_outputs(otel_capture: Capture) -> None:
    log = structlog.get_logger()
    log.info(
        "calling api",
        api_key="sk-live-123",
        Authorization="Bearer abc",
        headers={"Cookie": "session=xyz", "accept": "json"},
        db_password="hunter2",
        refresh_token="rt-1",
    )
    logging.getLogger("httpx").warning("login", extra={"secret": "s3"})
    text = otel_capture.stream.getvalue()
    for secret in ("sk-live-123", "Bearer abc", "session=xyz", "hunter2", "rt-1"):
        assert secret not in text
    rec = otel_capture.log_records(event="calling api")[0]
    assert rec["api_key"] == "***" and rec["Authorization"] == "***"
    assert rec["db_password"] == "***" and rec["refresh_token"] == "***"
    assert "xyz" not in rec["headers"] and "json" in rec["headers"]
    dumped = repr(otel_capture.log_records())
    for secret in ("sk-live-123", "Bearer abc", "session=xyz", "hunter2", "rt-1"):
        assert secret not in dumped


def test_exception_attributes(otel_capture: Capture) -> None:
    log = structlog.get_logger()
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed", event_type="error")
    rec = otel_capture.log_records(event="lookup failed")[0]
    assert rec["severity"] == "ERROR"
    assert rec["exception.type"] == "KeyError"
    assert "missing" in rec["exception.message"]
    assert "Traceback" in rec["exception.stacktrace"]
    line = otel_capture.json_lines()[0]
    assert line["exception.type"] == "KeyError"


def test_event_type_defaults_to_level(otel_capture: Capture) -> None:
    structlog.get_logger().warning("disk nearly full")
    assert otel_capture.json_lines()[0]["event_type"] == "warning"


def test_log_records_counted_by_level(otel_capture: Capture) -> None:
    log = structlog.get_logger()
    log.info("a")
    log.error("b")
    log.error("c")
    logging.getLogger("apscheduler").error("d")
    assert otel_capture.metric_value("log_records", level="error") == 3
    assert otel_capture.metric_value("log_records", level="info") == 1


def test_odd_values_become_otel_types(otel_capture: Capture) -> None:
    structlog.get_logger().info(
        "odd",
        big=2**70,
        items=[1, "a"],
        tags=["x", "y"],
        obj=object(),
        none=None,
        by_pair={(1, 2): "tuple key"},
    )
    assert otel_capture.json_lines()[0]["big"] == 2**70
    rec = otel_capture.log_records(event="odd")[0]
    assert rec["big"] == str(2**70)
    assert rec["tags"] == ("x", "y")
    assert isinstance(rec["items"], str) and isinstance(rec["obj"], str)
    assert "none" not in rec


def test_callsite_fields_when_enabled() -> None:
    capture = Capture(log_callsite=True)
    try:
        structlog.get_logger().info("where am i")
        line = capture.json_lines()[0]
        assert line["filename"] == "test_logging.py"
        assert line["func_name"] == "test_callsite_fields_when_enabled"
        rec = capture.log_records(event="where am i")[0]
        assert rec["code.filepath"] == "test_logging.py"
        assert isinstance(rec["code.lineno"], int)
    finally:
        capture.close()


def test_cached_logger_follows_reconfigure() -> None:
    log = structlog.get_logger("cached")
    first = Capture(service_name="one")
    log.info("to one")
    first.close()
    second = Capture(service_name="two")
    try:
        log.info("to two")
        assert [line["event"] for line in second.json_lines()] == ["to two"]
        assert second.json_lines()[0]["service"] == "two"
        assert [r["event"] for r in second.log_records()] == ["to two"]
    finally:
        second.close()


def test_structlog_bound_contextvars_are_merged(otel_capture: Capture) -> None:
    structlog.contextvars.bind_contextvars(user_id=77, chat="c-1")
    try:
        structlog.get_logger().info("with bound vars")
    finally:
        structlog.contextvars.clear_contextvars()
    structlog.get_logger().info("after clear")
    first, second = otel_capture.json_lines()
    assert first["user_id"] == 77 and first["chat"] == "c-1"
    assert "user_id" not in second
    assert otel_capture.log_records(event="with bound vars")[0]["user_id"] == 77


def test_bridged_record_matches_the_api_constructor() -> None:
    from opentelemetry._logs import LogRecord, SeverityNumber

    from otel_assist.logs.export_queue import _RECORD_CONTEXT, BridgedLogRecord

    attrs = {"event_type": "info", "user_id": 1}
    fast = BridgedLogRecord.bridged(123, SeverityNumber.INFO, "INFO", "hello", attrs)
    slow = LogRecord(
        timestamp=123,
        observed_timestamp=123,
        context=_RECORD_CONTEXT,
        severity_number=SeverityNumber.INFO,
        severity_text="INFO",
        body="hello",
        attributes=attrs,
    )
    assert isinstance(fast, LogRecord)
    assert vars(fast) == vars(slow)


def test_stdlib_callsite_on_warnings_not_walked_for_info(otel_capture: Capture) -> None:
    """Stdlib INFO lines skip logging's stack walk (the line shows no callsite anyway);
    a warning still carries where it came from, from the record stdlib filled."""
    from otel_assist.logs.stdlib_callsite import LeanLogger

    lib = logging.getLogger("tests.lean.callsite")
    assert type(lib) is LeanLogger
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep()
    lib.addHandler(keep)
    try:
        lib.info("quiet %s", "line")
        lib.warning("loud %s", "line")
        try:
            raise ValueError("boom")
        except ValueError:
            lib.info("handled", exc_info=True)
    finally:
        lib.removeHandler(keep)
    assert [r.funcName for r in seen] == [
        "(unknown function)",
        "test_stdlib_callsite_on_warnings_not_walked_for_info",
        "(unknown function)",
    ]
    assert seen[2].exc_info is not None and seen[2].exc_info[0] is ValueError
    lines = otel_capture.json_lines()
    assert [line["event"] for line in lines] == ["quiet line", "loud line", "handled"]
    assert "filename" not in lines[0] and lines[1]["filename"] == "test_logging.py"
    assert lines[2]["exception.type"] == "ValueError"
    rec = otel_capture.log_records(event="loud line")[0]
    assert rec["code.function"] == "test_stdlib_callsite_on_warnings_not_walked_for_info"


def test_stdlib_callsite_on_every_line_when_enabled() -> None:
    capture = Capture(log_callsite=True)
    try:
        logging.getLogger("tests.lean.all").info("where am i")
        line = capture.json_lines()[0]
        assert line["filename"] == "test_logging.py"
        assert line["func_name"] == "test_stdlib_callsite_on_every_line_when_enabled"
    finally:
        capture.close()


def test_line_timestamp_is_the_record_time_in_iso_8601_utc() -> None:
    """The cached-prefix clock writes what ``datetime.isoformat`` would, microseconds
    zero-padded, across second boundaries and before the epoch's first second."""
    from datetime import UTC, datetime

    from otel_assist.logs.processors import _IsoClock

    clock = _IsoClock()
    start = 1_765_000_000_999_999_000  # ns, a microsecond before a second boundary
    samples = [start + step for step in (0, 1_000, 1_001_000, 7_000_000_000, 59_000)]
    samples += [0, 5_000, 999_999_999, 1_700_000_000_000_001_000]
    for ns in samples:
        micro = datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(
            microsecond=ns % 1_000_000_000 // 1000
        )
        assert clock.format(ns) == micro.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
