"""The hand-written OTLP log encoder against the official one, and the exporter using it.

Differential: each batch is encoded by ``OTLPLogEncoder`` and by the official
``encode_logs``; our bytes, parsed by the official ``ExportLogsServiceRequest``, must give
the same message. (They are byte-identical too, which is asserted separately so that a
protobuf release reordering fields would fail only that test.)
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordLimits,
    LogRecordProcessor,
    ReadableLogRecord,
    ReadWriteLogRecord,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TraceFlags

import otel_assist
from otel_assist import telemetry
from otel_assist.logs.export_queue import (
    _SCOPE,
    LEVELS,
    LogQueue,
    RecordLimits,
    record_count,
    to_log_record,
)
from otel_assist.logs.otlp_encoder import EncodedLogRecord, OTLPLogEncoder, any_value, varint
from otel_assist.logs.otlp_exporter import OTLPHttpLogExporter
from tests.otlp_receiver import OTLPReceiver
from tests.polling import poll

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1

RESOURCES = [
    Resource({"service.name": "svc", "service.instance.id": "i-1"}),
    Resource({"service.name": "svc", "service.instance.id": "i-1"}),  # equal, distinct
    Resource({"service.name": "other", "tags": ("a", "b"), "n": 3}, schema_url="https://s/1"),
    Resource({}),
]
SCOPES: list[InstrumentationScope | None] = [
    _SCOPE,
    InstrumentationScope("otel_assist.logs"),  # equal, distinct
    InstrumentationScope("lib", "1.2.3", "https://schema/2", {"scope.attr": True, "n": 1}),
    InstrumentationScope("", None),
    None,
]


def assert_same_as_official(batch: Sequence[ReadableLogRecord]) -> bytes:
    """Our bytes parse to the official message (NaN-safe: a parsed message with a NaN is
    not equal to itself, so the comparison is of canonical re-serializations)."""
    encoded = OTLPLogEncoder().encode(batch)
    assert encoded.rejected == 0
    ours = ExportLogsServiceRequest.FromString(encoded.data)
    official = encode_logs(batch)
    assert ours.SerializeToString(deterministic=True) == official.SerializeToString(
        deterministic=True
    ), f"\nours:     {ours}\nofficial: {official}"
    if not _has_nan(batch):
        assert ours == official
    return encoded.data


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, ReadableLogRecord):
        rec = value.log_record
        return _has_nan(rec.body) or _has_nan(rec.attributes)
    if isinstance(value, Mapping):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return any(_has_nan(v) for v in value)
    return False


def record(
    body: Any = "hello",
    attributes: Mapping[str, Any] | None = None,
    *,
    timestamp: int | None = 1_700_000_000_123_456_789,
    observed: int | None = 1_700_000_000_223_456_789,
    severity_number: SeverityNumber | None = SeverityNumber.INFO,
    severity_text: str | None = "INFO",
    trace_id: int = 0,
    span_id: int = 0,
    flags: int = 0,
    event_name: str | None = None,
    resource: Resource = RESOURCES[0],
    scope: InstrumentationScope | None = _SCOPE,
) -> ReadableLogRecord:
    log = LogRecord(
        timestamp=timestamp,
        observed_timestamp=observed,
        trace_id=trace_id,
        span_id=span_id,
        trace_flags=TraceFlags(flags),
        severity_text=severity_text,
        severity_number=severity_number,
        body=body,
        attributes=attributes,  # type: ignore[arg-type]
        event_name=event_name,
    )
    log.observed_timestamp = observed  # the constructor fills in None with "now"
    return ReadableLogRecord(log, resource, scope)


# -- hand-picked cases


class _Text(str):
    """A str subclass: the slow path's isinstance checks, not the exact-type fast path."""


EDGE_VALUES: list[Any] = [
    "",
    "plain",
    "ünïcødé ✓ 日本語 🎉",
    "x" * 300,  # beyond the string cache, two-byte length
    "y" * 20000,  # three-byte length
    True,
    False,
    0,
    1,
    -1,
    127,
    128,
    INT64_MIN,
    INT64_MAX,
    0.0,
    -0.0,
    1.5,
    -2.25e300,
    math.inf,
    -math.inf,
    math.nan,
    b"",
    b"\x00\xff raw",
    bytearray(b"ab"),  # official: a sequence of ints, not bytes
    [],
    ["a", "b"],
    [1, "two", 3.0, None, b"4", [5, [6]]],
    ("t", 1),
    {},
    {"k": "v", "n": {"deep": [1, {"x": None}]}, 3: "int key becomes '3'"},
    None,
    HTTPStatus.NOT_FOUND,  # an IntEnum: an int
    _Text("a str subclass"),
]


@pytest.mark.parametrize("value", EDGE_VALUES, ids=repr)
def test_value_as_body_and_attribute(value: Any) -> None:
    attributes = {"v": value, "": value, "after": 1}
    assert_same_as_official([record(body=value, attributes=attributes)])


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"timestamp": None},
        {"observed": None},
        {"timestamp": None, "observed": None},
        {"timestamp": 0, "observed": UINT64_MAX},
        {"severity_number": None, "severity_text": None},
        {"severity_number": SeverityNumber.UNSPECIFIED, "severity_text": ""},
        {"severity_number": SeverityNumber.FATAL4, "severity_text": "FATAL"},
        {"trace_id": 0x0AF7651916CD43DD8448EB211C80319C, "span_id": 0xB7AD6B7169203331, "flags": 1},
        {"trace_id": 2**128 - 1, "span_id": 2**64 - 1, "flags": 0},
        {"event_name": "user.signup"},
        {"event_name": ""},
        {"body": None, "attributes": {}},
    ],
    ids=repr,
)
def test_record_fields(overrides: dict[str, Any]) -> None:
    assert_same_as_official([record(**overrides)])


def test_grouping_by_resource_and_scope_in_first_seen_order() -> None:
    batch = [
        record(body=f"r{i}", resource=RESOURCES[i % 4], scope=SCOPES[(i * 7) % 5])
        for i in range(40)
    ]
    data = assert_same_as_official(batch)
    parsed = ExportLogsServiceRequest.FromString(data)
    # equal Resource objects share a ResourceLogs, equal scopes a ScopeLogs
    assert len(parsed.resource_logs) == 3
    assert all(len(rl.scope_logs) == 4 for rl in parsed.resource_logs)


def test_resource_attributes_equal_to_record_attributes() -> None:
    """The caches hold what follows a tag: the same key=value as a resource attribute
    (field 1), a scope attribute (field 3) and a record attribute (field 6)."""
    resource = Resource({"service.name": "svc"})
    scope = InstrumentationScope("s", attributes={"service.name": "svc"})
    encoder = OTLPLogEncoder()
    for _ in range(2):  # the second batch comes from the caches
        batch = [record(attributes={"service.name": "svc"}, resource=resource, scope=scope)]
        ours = ExportLogsServiceRequest.FromString(encoder.encode(batch).data)
        assert ours == encode_logs(batch)


def test_bytes_are_identical_to_official() -> None:
    batch = [
        record(body=v, attributes={"v": v, "i": i}, resource=RESOURCES[i % 4], scope=SCOPES[i % 5])
        for i, v in enumerate(EDGE_VALUES)
    ]
    assert OTLPLogEncoder().encode(batch).data == encode_logs(batch).SerializeToString()


def test_empty_batch() -> None:
    assert OTLPLogEncoder().encode([]).data == encode_logs([]).SerializeToString() == b""


def test_varint_and_any_value_wire_format() -> None:
    assert varint(0) == b"\x00"
    assert varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"  # int64 -1: ten bytes, no zigzag
    assert any_value(-1) == b"\x18" + b"\xff" * 9 + b"\x01"
    assert any_value(1.0) == b"\x21" + b"\x00" * 6 + b"\xf0\x3f"  # fixed64, little-endian
    assert any_value(None) == b""


# -- records from our bridge and from the SDK Logger.emit path


BRIDGED_EVENTS: list[dict[str, Any]] = [
    {
        "event": "user message received",
        "level": "info",
        "timestamp": "2026-11-27T19:40:22.195687Z",
        "service": "svc",
        "event_type": "request_in",
        "user_id": 42,
        "chars": 5,
        "ratio": 0.5,
        "ok": True,
        "correlation_id": "c-1",
    },
    {"event": "boom", "level": "error", "exception": "Traceback...\nValueError: x"},
    {"event": 123, "level": "critical", "big": 2**70, "tags": ["a", "b"], "nested": {"a": [1]}},
    {"event": "", "level": "warning", "lineno": 7, "filename": "f.py", "func_name": "g"},
    {"event": "none", "level": "debug", "missing": None, "mixed": [1, "a", None], "empty": ""},
    {"event": "odd level", "level": "nonsense", "unicode": "ü" * 200},
]


def test_bridged_records() -> None:
    batch = [
        ReadableLogRecord(to_log_record(1_700_000_000_000_000_000 + i, ed), RESOURCES[0], _SCOPE)
        for i, ed in enumerate(BRIDGED_EVENTS * 3)
    ]
    assert_same_as_official(batch)


class _Keep(LogRecordProcessor):
    def __init__(self) -> None:
        self.records: list[ReadWriteLogRecord] = []

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self.records.append(log_record)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@pytest.mark.filterwarnings("ignore:Log record attributes were dropped")
@pytest.mark.skipif(
    "log_record_limits" not in inspect.signature(LoggerProvider).parameters,
    reason="this SDK (< 1.45) cannot bound a LoggerProvider's record attributes",
)
def test_sdk_emitted_records_with_bounded_attributes() -> None:
    keep = _Keep()
    provider = LoggerProvider(
        resource=RESOURCES[2],
        shutdown_on_exit=False,
        log_record_limits=LogRecordLimits(max_attributes=3),
    )
    provider.add_log_record_processor(keep)
    logger = provider.get_logger("lib.module", "0.1", attributes={"lib": "x"})
    logger.emit(body="plain", severity_number=SeverityNumber.INFO, attributes={"a": 1})
    logger.emit(
        body={"structured": [1, 2.5, "x"]},
        severity_text="WARN",
        severity_number=SeverityNumber.WARN,
        attributes={"a": 1, "b": "two", "c": [1, 2], "d": 4.0, "e": False},  # 2 dropped
        event_name="lib.event",
        timestamp=1_700_000_000_000_000_001,
    )
    provider.get_logger("other").emit(body=b"bytes body")
    batch = [
        ReadableLogRecord(r.log_record, r.resource, r.instrumentation_scope, r.limits)
        for r in keep.records
    ]
    assert batch[1].dropped_attributes == 2
    data = assert_same_as_official(batch)
    parsed = ExportLogsServiceRequest.FromString(data)
    assert parsed.resource_logs[0].scope_logs[0].log_records[1].dropped_attributes_count == 2


# -- generated batches


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.text(),
    st.integers(INT64_MIN, INT64_MAX),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(),
)
_any = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)
_attributes = st.dictionaries(
    st.one_of(st.sampled_from(["user_id", "event_type", "correlation_id", ""]), st.text()),
    st.one_of(
        st.sampled_from(["request_in", "c-1", 42, True, 0.25]),
        st.text(max_size=150),
        st.integers(INT64_MIN, INT64_MAX),
        st.tuples(st.text(), st.text()),
        _any,
    ),
    max_size=8,
)
_optional_u64 = st.one_of(st.none(), st.just(0), st.integers(0, UINT64_MAX))


@st.composite
def _records(draw: st.DrawFn) -> ReadableLogRecord:
    return record(
        body=draw(_any),
        attributes=draw(_attributes),
        timestamp=draw(_optional_u64),
        observed=draw(_optional_u64),
        severity_number=draw(st.one_of(st.none(), st.sampled_from(list(SeverityNumber)))),
        severity_text=draw(st.one_of(st.none(), st.sampled_from(["INFO", "ERROR", ""]), st.text())),
        trace_id=draw(st.one_of(st.just(0), st.integers(1, 2**128 - 1))),
        span_id=draw(st.one_of(st.just(0), st.integers(1, 2**64 - 1))),
        flags=draw(st.sampled_from([0, 1])),
        event_name=draw(st.one_of(st.none(), st.text(max_size=20))),
        resource=draw(st.sampled_from(RESOURCES)),
        scope=draw(st.sampled_from(SCOPES)),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_records(), max_size=12))
def test_generated_batches(batch: list[ReadableLogRecord]) -> None:
    assert_same_as_official(batch)


# -- structlog lines written straight from the event dict (LogQueue's fast path)

_event_values = st.one_of(
    st.sampled_from(["request_in", "c-1", "", "\udcff", "a\x00b", 42, -1, True, False, 0.25]),
    st.text(max_size=200),
    st.integers(),  # past 64 bits too: the general path makes them strings
    st.floats(),
    st.none(),
    st.datetimes(timezones=st.timezones()),
    _any,
)
_event_keys = st.one_of(
    st.sampled_from(
        [
            *("user_id", "event_type", "correlation_id", "", "filename", "lineno", "func_name"),
            *("code.filepath", "code.lineno", "logger", "exception", "\udcff", "timestamp"),
        ]
    ),
    st.text(max_size=140),
)


@st.composite
def _event_dicts(draw: st.DrawFn) -> dict[Any, Any]:
    event = draw(_event_keys_values())
    event["event"] = draw(st.one_of(st.text(max_size=300), st.sampled_from(["hi", "\udcff"])))
    event["level"] = draw(st.sampled_from([*LEVELS, "notice", "info"]))
    if draw(st.booleans()):  # many fields, or one huge: past the size caps
        event.update({f"k{i}": "v" * draw(st.integers(0, 50)) for i in range(100)})
    if draw(st.booleans()):
        event["big"] = "x" * draw(st.sampled_from([4000, 4096, 17_000]))
    return event


def _event_keys_values() -> st.SearchStrategy[dict[Any, Any]]:
    return st.dictionaries(_event_keys, _event_values, max_size=10)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_event_dicts(), min_size=1, max_size=6), st.integers(1, 2**63 - 1))
def test_event_dicts_encoded_directly_equal_the_general_path(
    events: list[dict[Any, Any]], ts: int
) -> None:
    """The wire form LogQueue writes straight from an event dict is byte-identical to the
    record built by to_log_record (size caps, escaping, renames), whose encoding the
    tests above hold to the official encoder's; lines it cannot write directly go the
    general way."""
    limits = RecordLimits()
    queue = LogQueue(None, RESOURCES[0], limits=limits)
    queue._encoder = OTLPLogEncoder()  # as configure() gives it, without a thread
    # Twice: the second pass writes from the shapes and tables the first one filled.
    for _ in range(2):
        direct = queue._convert([(ts, dict(event)) for event in events])
        assert record_count(direct) == len(events)
        general = [
            ReadableLogRecord(to_log_record(ts, dict(event), limits), RESOURCES[0], _SCOPE)
            for event in events
        ]
        ours = OTLPLogEncoder().encode(direct)
        expected = OTLPLogEncoder().encode(general)
        assert ours.rejected == expected.rejected == 0
        assert ours.data == expected.data


def test_common_lines_take_the_direct_path() -> None:
    """The benchmark's line and a callsite-carrying warning are written directly (a
    silent fall back to the general path would cost what this path saves)."""
    queue = LogQueue(None, RESOURCES[0])
    queue._encoder = OTLPLogEncoder()
    line = {"event_type": "request_in", "user_id": 42, "chars": 1000, "event": "received"}
    line |= {"level": "info", "timestamp": "2026-12-05T22:50:02Z", "service": "svc"}
    warning = {**line, "level": "warning", "filename": "a.py", "lineno": 3, "func_name": "f"}
    for event in (line, warning, {**line, "ratio": 0.5, "ok": True, "user_id": -(2**63)}):
        assert isinstance(queue._readable((1, event)), EncodedLogRecord)


def test_direct_lines_travel_in_chunks_around_general_ones() -> None:
    """Consecutive direct lines become one chunk with their count; a line the direct path
    leaves out (a list value, an int past 64 bits) keeps its place between chunks, and
    the request is the general path's, record for record."""
    queue = LogQueue(None, RESOURCES[0])
    queue._encoder = OTLPLogEncoder()
    line = {"event_type": "request_in", "user_id": 42, "event": "received", "level": "info"}
    batch = [
        (1, dict(line)),
        (2, {**line, "user_id": 2**70}),
        (3, {**line, "tags": ["a", "b"]}),
        (4, dict(line)),
        (5, {**line, "chars": 300, "ratio": 0.5, "ok": True}),
    ]
    converted = queue._convert(batch)
    kinds = [(type(r).__name__, getattr(r, "records", 1)) for r in converted]
    assert kinds == [
        ("EncodedLogRecord", 1),
        ("ReadableLogRecord", 1),
        ("ReadableLogRecord", 1),
        ("EncodedLogRecord", 2),
    ]
    assert record_count(converted) == len(batch)
    general = [
        ReadableLogRecord(to_log_record(ts, dict(event), queue.limits), RESOURCES[0], _SCOPE)
        for ts, event in batch
    ]
    assert OTLPLogEncoder().encode(converted).data == OTLPLogEncoder().encode(general).data


# -- what the official encoder cannot encode


def test_unencodable_attribute_is_left_out_as_official() -> None:
    """protobuf refuses ints beyond int64 and non-string keys; the official encoder leaves
    such an attribute out, and so do we."""
    bad = {"big": 2**63, 7: "int key", "ok": 1, "deep": [2**64]}
    assert_same_as_official([record(attributes=bad)])
    parsed = ExportLogsServiceRequest.FromString(
        OTLPLogEncoder().encode([record(attributes=bad)]).data
    )
    assert [kv.key for kv in parsed.resource_logs[0].scope_logs[0].log_records[0].attributes] == [
        "ok"
    ]


def test_lone_surrogates_are_escaped_not_dropped() -> None:
    """The official encoder drops an attribute holding a lone surrogate and fails the whole
    batch on such a body (issue 10, point 1: the record was lost). Ours escapes it, the
    same way the JSON line shows it (``\\udcff``), and keeps the record."""
    rec = record(
        body="file \udcff.txt",
        attributes={"name": "\udcff", "k\udcff": ["a\udcff", {"n\udcff": "v\udcff"}], "ok": 1},
    )
    encoded = OTLPLogEncoder().encode([rec])
    assert encoded.rejected == 0
    parsed = ExportLogsServiceRequest.FromString(encoded.data)
    log = parsed.resource_logs[0].scope_logs[0].log_records[0]
    assert log.body.string_value == "file \\udcff.txt"
    values = {kv.key: kv.value for kv in log.attributes}
    assert values["name"].string_value == "\\udcff"
    assert values["ok"].int_value == 1
    nested = values["k\\udcff"].array_value.values
    assert nested[0].string_value == "a\\udcff"
    assert nested[1].kvlist_value.values[0].key == "n\\udcff"


@pytest.mark.parametrize("bad", [{"body": object()}, {"body": 2**64}, {"timestamp": -1}])
def test_unencodable_record_is_left_out_and_counted(bad: dict[str, Any]) -> None:
    """The official encoder fails the whole batch on these; we leave out the one record."""
    good = [record(body="before"), record(body="after")]
    batch = [good[0], record(**bad), good[1]]
    with pytest.raises(Exception):  # noqa: B017 - whatever protobuf raises
        encode_logs(batch)
    encoded = OTLPLogEncoder().encode(batch)
    assert encoded.rejected == 1
    assert ExportLogsServiceRequest.FromString(encoded.data) == encode_logs(good)


# -- the exporter


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    current = telemetry.current()
    if current is not None:
        current.shutdown()
    with OTLPReceiver() as r:
        yield r


def test_configure_exports_our_encoding_end_to_end(receiver: OTLPReceiver) -> None:
    tel = otel_assist.configure(
        "encoder_e2e",
        otlp_endpoint=receiver.endpoint,
        metrics_exporters=(),
        log_format="json",
        log_export_interval_ms=50,
    )
    try:
        assert isinstance(tel.log_queue.exporter, OTLPHttpLogExporter)
        log = structlog.get_logger()
        log.info("first", event_type="request_in", user_id=42, ratio=0.5, ok=True, tags=["a"])
        log.error("second", text="ünïcødé", big=-(2**63))
        # an SDK emitter's record the official encoder would fail the whole batch on
        tel.logger_provider.get_logger("lib").emit(body=object())
        assert tel.force_flush(10)
        poll(lambda: len(receiver.records()) >= 2, 10, "records at the receiver")
        time.sleep(0.2)  # nothing else should arrive
        first, second = receiver.records()
    finally:
        tel.shutdown()
    assert first["body"] == "first" and first["severity_text"] == "INFO"
    assert first["severity_number"] == SeverityNumber.INFO.value
    assert (first["event_type"], first["user_id"], first["ratio"], first["ok"]) == (
        "request_in",
        42,
        0.5,
        True,
    )
    assert first["tags"] == ["a"]
    assert second["body"] == "second" and second["severity_text"] == "ERROR"
    assert second["text"] == "ünïcødé" and second["big"] == -(2**63)
    assert first["resource"]["service.name"] == "encoder_e2e"
    assert first["resource"]["service.instance.id"] == tel.instance_id
    assert tel.log_queue.exported == 2
    assert tel.log_queue.dropped["export_failed"] == 1


def test_unique_attribute_values_are_not_remembered_without_bound() -> None:
    """A line carrying a value that never repeats (a correlation_id, a timestamp) keeps the
    encoder's value tables small: each attribute's table starts afresh at its limit, so a
    long stream costs no memory beyond it (65,536 remembered ids were 13 MiB of a
    hello-world service's RSS), while the values that repeat are still written the same."""
    from otel_assist.logs import otlp_encoder

    queue = LogQueue(None, RESOURCES[0])
    encoder = OTLPLogEncoder()
    queue._encoder = encoder
    lines = 20 * otlp_encoder._TABLE_LIMIT
    for start in range(0, lines, 1000):
        batch = [
            (i + 1, {"event": "received", "level": "info", "correlation_id": f"{i:032x}"})
            for i in range(start, min(lines, start + 1000))
        ]
        converted = queue._convert(batch)
        assert record_count(converted) == len(batch)
    tables = encoder._event_strings.values()
    assert sum(len(table) for table in tables) <= 2 * otlp_encoder._TABLE_LIMIT
    # And the records stay what the general path writes.
    last = (7, {"event": "received", "level": "info", "correlation_id": "f" * 32})
    general = ReadableLogRecord(to_log_record(*last, RecordLimits()), RESOURCES[0], _SCOPE)
    direct = OTLPLogEncoder().encode(queue._convert([last])).data
    assert direct == OTLPLogEncoder().encode([general]).data
