"""Hostile input on the whole log path (issue 10, points 1 and 8): a log call never raises,
never loses its line, and no secret survives, in the JSON line or the OpenTelemetry record.

The OpenTelemetry side is checked as it leaves the process: every batch is serialized by
the real encoder (``OTLPLogEncoder``) and parsed back with protobuf's own
``ExportLogsServiceRequest``, so "one record, parseable" means what the Collector sees.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import logging
import math
import string
import types
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from otel_assist import telemetry
from otel_assist.logs.otlp_encoder import OTLPLogEncoder
from tests.otlp_receiver import any_value

OPERATOR_PATTERN = r"OPS-[0-9]{6}"


class WireExporter(LogRecordExporter):
    """Encodes each batch with the real encoder and keeps what protobuf parses back."""

    def __init__(self) -> None:
        self.encoder = OTLPLogEncoder()
        self.records: list[dict[str, Any]] = []
        self.rejected = 0
        self.wire = b""

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        encoded = self.encoder.encode(batch)
        self.rejected += encoded.rejected
        self.wire += encoded.data
        request = ExportLogsServiceRequest.FromString(encoded.data)
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                for rec in sl.log_records:
                    flat = {kv.key: any_value(kv.value) for kv in rec.attributes}
                    flat["body"] = any_value(rec.body)
                    flat["severity_text"] = rec.severity_text
                    self.records.append(flat)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Pipeline:
    """A configured service whose stdout and OTLP output are kept for one call at a time."""

    def __init__(self) -> None:
        current = telemetry.current()
        if current is not None:
            current.shutdown()
        self.stream = io.StringIO()
        self.exporter = WireExporter()
        self.telemetry = telemetry.configure(
            "hostile",
            log_stream=self.stream,
            log_exporter=self.exporter,
            metrics_exporters=(),
            log_format="json",
            secret_patterns=(OPERATOR_PATTERN,),
        )

    def reset(self) -> None:
        self.telemetry.force_flush()
        self.stream.seek(0)
        self.stream.truncate()
        self.exporter.records.clear()
        self.exporter.wire = b""
        self.exporter.rejected = 0

    def one_call(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(raw line, parsed line, parsed record) of the one call made since reset()."""
        assert self.telemetry.force_flush(5)
        text = self.stream.getvalue()
        lines = [line for line in text.split("\n") if line]
        assert len(lines) == 1, text
        parsed = orjson.loads(lines[0])  # strict: no NaN, valid UTF-8
        assert self.exporter.rejected == 0
        assert len(self.exporter.records) == 1, self.exporter.records
        return lines[0], parsed, self.exporter.records[0]

    def close(self) -> None:
        self.telemetry.shutdown()


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    p = Pipeline()
    try:
        yield p
    finally:
        p.close()


# -- strategies: nasty values

NASTY_TEXT = [
    "\udcff",
    "\ud800",
    "a\udfffb",
    "\x00",
    "\x1b[31mred",
    "\u2028\u2029",
    "\ufeff",
    "\r\n",
    '"}{',
    "%s %d %(x)s",
    "é😀",
    "{",
    "a" * 300,
]


def nasty_text() -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.text(max_size=12), st.sampled_from(NASTY_TEXT)), max_size=4).map(
        "".join
    )


class OddMapping(collections.abc.Mapping[Any, Any]):
    """A read-only Mapping that is not a dict (as starlette's Headers is not)."""

    def __init__(self, data: dict[Any, Any]) -> None:
        self._data = data

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class Unprintable:
    """``str()`` fails (repr works, so hypothesis can report an example holding one)."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        return "Unprintable()"


class Unrepresentable(Unprintable):
    """Neither ``str()`` nor ``repr()`` works."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


@dataclasses.dataclass
class Point:
    x: Any
    label: Any


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        nasty_text(),
        st.integers(),  # unbounded: past 64 bits too
        st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**40]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.none(),
        st.binary(max_size=20),
        st.datetimes(
            min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.none()
        ),
        st.sampled_from(
            [
                datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-1))),
                datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
                Unprintable(),
                object(),
            ]
        ),
    )


def odd_keys() -> st.SearchStrategy[Any]:
    return st.one_of(nasty_text(), st.integers(), st.tuples(st.integers(), st.text(max_size=3)))


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    dicts = st.dictionaries(odd_keys(), children, max_size=4)
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        dicts,
        dicts.map(collections.OrderedDict),
        dicts.map(lambda d: collections.defaultdict(list, d)),
        dicts.map(types.MappingProxyType),
        dicts.map(OddMapping),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=5)), max_size=4),
        st.builds(Point, children, children),
    )


def values() -> st.SearchStrategy[Any]:
    return st.recursive(scalars(), containers, max_leaves=25)


SECRET_KEYS = [
    "password",
    "X-Api-Key",
    "api-key",
    "apiKey",
    "bearer",
    "pwd",
    "privateKey",
    "access_key",
    "auth",
    "Authorization",
    "db_password",
    "client_secret",
    "refresh_token",
    "Cookie",
    "x-auth-token",
]


def secrets() -> st.SearchStrategy[str]:
    return st.text(string.ascii_letters + string.digits, min_size=10, max_size=16).map(
        lambda s: "zq" + s
    )


def secret_in_text(secret: str) -> st.SearchStrategy[str]:
    """A string with ``secret`` in one of the shapes the scrubber knows."""
    return st.sampled_from(
        [
            f"postgresql://app:{secret}@db:5432/app",
            f"redis://:{secret}@cache:6379/0",
            f"Authorization: Bearer {secret}",
            f"authorization='Basic {secret}'",
            f"got Bearer {secret} from header",
            f"login failed password={secret} for bob",
            f"token: {secret}",
            f'{{"api_key": "{secret}"}}',
            f"{{'pwd': '{secret}'}}",
            f"dsn=postgres://u:{secret}@h/db",
        ]
    )


@st.composite
def secret_placements(draw: st.DrawFn) -> tuple[str, Any]:
    """(secret, a value hiding it): under a secret key at any depth of any container
    type, or inside a string by shape, itself nested anywhere."""
    secret = draw(secrets())
    if draw(st.booleans()):
        hidden: Any = {draw(st.sampled_from(SECRET_KEYS)): secret}
    else:
        hidden = draw(nasty_text()) + " " + draw(secret_in_text(secret)) + " " + draw(nasty_text())
    for _ in range(draw(st.integers(0, 40))):
        wrap = draw(st.sampled_from(["dict", "list", "tuple", "odd", "proxy", "dataclass"]))
        key = draw(st.text(string.ascii_lowercase, min_size=1, max_size=6))
        if wrap == "dict":
            hidden = {key: hidden, "n": 1}
        elif wrap == "list":
            hidden = [1, hidden]
        elif wrap == "tuple":
            hidden = (hidden,)
        elif wrap == "odd":
            hidden = OddMapping({key: hidden})
        elif wrap == "proxy":
            hidden = types.MappingProxyType({key: hidden})
        else:
            hidden = Point(hidden, key)
    return secret, hidden


SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

RESERVED = {"event", "_record", "_from_structlog", "hidden_value"}


def kwargs_strategy() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(nasty_text().filter(lambda k: k not in RESERVED), values(), max_size=5)


def assert_clean(raw: str, record: dict[str, Any], secret: str) -> None:
    assert secret not in raw
    assert secret not in repr(record)


@contextlib.contextmanager
def only_our_handler() -> Iterator[None]:
    """The root logger as in production: pytest's capture handler (which re-raises
    formatting errors of its own) is set aside for the call."""
    root = logging.getLogger()
    saved = list(root.handlers)
    root.handlers = [h for h in saved if h.get_name() == "otel-assist"]
    try:
        yield
    finally:
        root.handlers = saved


# -- properties


@SETTINGS
@given(
    event=st.one_of(nasty_text(), scalars()),
    fields=kwargs_strategy(),
    placed=secret_placements(),
    where=st.sampled_from(["field", "event", "exception"]),
)
def test_structlog_call_never_raises_one_line_one_record_no_secret(
    pipeline: Pipeline, event: Any, fields: dict[str, Any], placed: tuple[str, Any], where: str
) -> None:
    secret, hidden = placed
    pipeline.reset()
    log = structlog.get_logger()
    if where == "field":
        log.info(event, hidden_value=hidden, **fields)
    elif where == "event":
        prefix = event[:20] if isinstance(event, str) else ""
        log.warning(f"{prefix} {hidden}" if isinstance(hidden, str) else hidden, **fields)
    else:
        try:
            raise ValueError(f"handler failed: {hidden}")
        except ValueError:
            log.exception(event, **fields)
    raw, _line, record = pipeline.one_call()
    assert_clean(raw, record, secret)
    assert isinstance(record["body"], str)


@SETTINGS
@given(
    template=nasty_text(),
    args=st.lists(st.one_of(scalars(), values()), max_size=3),
    placed=secret_placements(),
    name=st.sampled_from(["uvicorn.error", "apscheduler", "app.custom"]),
    level=st.sampled_from([logging.WARNING, logging.ERROR, logging.CRITICAL]),
)
def test_stdlib_call_never_raises_one_line_one_record_no_secret(
    pipeline: Pipeline,
    template: str,
    args: list[Any],
    placed: tuple[str, Any],
    name: str,
    level: int,
) -> None:
    """Templates with stray ``%`` and arguments of any type: a message that cannot be
    formatted still gives its line (never '--- Logging error ---')."""
    secret, hidden = placed
    pipeline.reset()
    with only_our_handler():
        logging.getLogger(name).log(level, template + " %s", *args, hidden)
    raw, _line, record = pipeline.one_call()
    assert_clean(raw, record, secret)


@SETTINGS
@given(fields=kwargs_strategy())
def test_json_line_and_record_agree_on_top_level_strings(
    pipeline: Pipeline, fields: dict[str, Any]
) -> None:
    """Strings (surrogates escaped, secrets masked) are the same in both outputs."""
    pipeline.reset()
    structlog.get_logger().info("agree", **fields)
    _raw, line, record = pipeline.one_call()
    for key, value in line.items():
        if isinstance(value, str) and key in record and key not in {"body", "severity_text"}:
            assert record[key] == value, key


# -- the defects, one by one (each failed on the code before the fix)


def test_lone_surrogate_in_structlog_call(pipeline: Pipeline) -> None:
    pipeline.reset()
    structlog.get_logger().error("listing", path="report\udcff.txt", n=2**70)
    _raw, line, record = pipeline.one_call()
    assert line["path"] == "report\\udcff.txt"
    assert record["path"] == "report\\udcff.txt"
    assert record["n"] == str(2**70)


def test_lone_surrogate_in_stdlib_call(pipeline: Pipeline) -> None:
    pipeline.reset()
    logging.getLogger("uvicorn.error").error("cannot open %s", "\udcff")
    _raw, line, record = pipeline.one_call()
    assert line["event"] == "cannot open \\udcff" == record["body"]


def test_unformattable_stdlib_message_keeps_its_line(pipeline: Pipeline) -> None:
    pipeline.reset()
    with only_our_handler():
        logging.getLogger("app.custom").error("port %d busy", "eighty")
    _raw, line, record = pipeline.one_call()
    assert "port %d busy" in line["event"] and "eighty" in line["event"]
    assert record["body"] == line["event"]


def test_unprintable_values_and_event(pipeline: Pipeline) -> None:
    pipeline.reset()
    structlog.get_logger().info(
        Unrepresentable(), obj=Unrepresentable(), half=Unprintable(), nan=math.nan, inf=-math.inf
    )
    _raw, line, record = pipeline.one_call()
    assert line["obj"] == "<unprintable Unrepresentable>" == record["obj"]
    assert line["half"] == "Unprintable()" == record["half"]
    assert line["nan"] is None and line["inf"] is None  # JSON has no NaN
    assert math.isnan(record["nan"]) and record["inf"] == -math.inf


@pytest.mark.parametrize(
    "value",
    [
        {"a": {"b": {"c": {"d": {"e": {"f": {"password": "zqLEAK1"}}}}}}},
        collections.OrderedDict(password="zqLEAK1"),
        collections.defaultdict(int, {"token": "zqLEAK1"}),
        types.MappingProxyType({"secret": "zqLEAK1"}),
        OddMapping({"api_key": "zqLEAK1"}),
        Point(x={"pwd": "zqLEAK1"}, label="p"),
        [{"X-Api-Key": "zqLEAK1"}],
        {"api-key": "zqLEAK1"},
        {"bearer": "zqLEAK1"},
        {"pwd": "zqLEAK1"},
        {"privateKey": "zqLEAK1"},
        {"access_key": "zqLEAK1"},
        {"auth": "zqLEAK1"},
        "postgresql://u:zqLEAK1@h/db",
        "Authorization: Bearer zqLEAK1",
        "password=zqLEAK1",
        "secret=zqLEAK1",
        "token=zqLEAK1",
        "operator pattern OPS-123456 zqLEAK1".replace(" zqLEAK1", ""),
    ],
    ids=repr,
)
def test_masking_gaps_from_the_issue(pipeline: Pipeline, value: Any) -> None:
    leak = "OPS-123456" if isinstance(value, str) and "OPS-" in value else "zqLEAK1"
    pipeline.reset()
    structlog.get_logger().info("call", value=value)
    raw, _line, record = pipeline.one_call()
    assert_clean(raw, record, leak)


def test_secret_in_exception_message_and_percent_args(pipeline: Pipeline) -> None:
    pipeline.reset()
    try:
        raise ConnectionError("could not connect to postgresql://app:zqLEAK2@db/app")
    except ConnectionError:
        logging.getLogger("app.custom").exception("handler error password=%s", "zqLEAK3")
    raw, line, record = pipeline.one_call()
    for leak in ("zqLEAK2", "zqLEAK3"):
        assert_clean(raw, record, leak)
    assert "postgresql://app:***@db/app" in line["exception.message"]
    assert line["event"] == "handler error password=***"


def test_cyclic_and_huge_structures_are_bounded(pipeline: Pipeline) -> None:
    cyclic: dict[str, Any] = {"password": "zqLEAK4"}
    cyclic["self"] = cyclic
    deep: Any = {"token": "zqLEAK5"}
    for _ in range(500):
        deep = {"d": deep}
    wide = {f"k{i}": i for i in range(100_000)}
    pipeline.reset()
    structlog.get_logger().info("shapes", cyclic=cyclic, deep=deep, wide=wide)
    raw, _line, record = pipeline.one_call()
    assert_clean(raw, record, "zqLEAK4")
    assert_clean(raw, record, "zqLEAK5")
    assert len(raw) < 200_000  # the node budget bounds the line


def test_now_is_not_a_secret(pipeline: Pipeline) -> None:
    """Ordinary text is left alone (the scrubber must not eat the log)."""
    pipeline.reset()
    text = "user said: hi, see https://example.com/a?b=c at " + datetime.now(UTC).isoformat()
    structlog.get_logger().info(text, author="Bob", note="none")
    _raw, line, record = pipeline.one_call()
    assert line["event"] == text == record["body"]
    assert line["author"] == "Bob"


# -- sizes (issue 10 point 9d): Loki refuses a record past 64 KiB of structured metadata
# or 128 entries, and the Collector then drops the whole request; truncate, never refuse.

LOKI_METADATA_BYTES = 65_536
LOKI_METADATA_ENTRIES = 128
RESOURCE_ROOM = 16_384  # what the defaults leave for resource attributes


def metadata_size(record: dict[str, Any]) -> int:
    size = 0
    for key, value in record.items():
        if key in {"body", "severity_text"}:
            continue
        size += len(key.encode()) + len(str(value).encode())
    return size


def test_huge_exception_message_is_truncated_to_fit_loki(pipeline: Pipeline) -> None:
    pipeline.reset()
    try:
        raise ValueError("x" * 100_000)
    except ValueError:
        structlog.get_logger().exception("handler failed")
    _raw, line, record = pipeline.one_call()
    assert len(line["exception.message"]) == 100_000  # stdout keeps the whole line
    assert metadata_size(record) <= LOKI_METADATA_BYTES - RESOURCE_ROOM
    message = record["exception.message"]
    assert message.startswith("xxx") and "…[truncated " in message
    removed = int(message.rsplit("…[truncated ", 1)[1].split(" ")[0])
    assert len(message.rsplit("…[truncated ", 1)[0].encode()) + removed == 100_000
    assert "…[truncated " in record["exception.stacktrace"]


def test_huge_body_and_many_attributes_are_capped(pipeline: Pipeline) -> None:
    pipeline.reset()
    fields = {f"field_{i}": "v" * 1000 for i in range(300)}
    structlog.get_logger().info("é" * 100_000, **fields)
    _raw, line, record = pipeline.one_call()
    assert len(line) > 300
    assert len(record["body"].encode()) <= 65_536 and "…[truncated " in record["body"]
    assert len(record) - 2 <= LOKI_METADATA_ENTRIES - 16
    assert record["otel_assist.attributes_dropped"] > 0
    assert metadata_size(record) <= LOKI_METADATA_BYTES - RESOURCE_ROOM


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(min_size=0, max_size=3000),
    limit=st.integers(min_value=0, max_value=4000),
)
def test_truncate_text_fits_and_says_how_much(text: str, limit: int) -> None:
    from otel_assist.logs.export_queue import truncate_text

    out = truncate_text(text, limit)
    data = text.encode("utf-8", "backslashreplace")
    if len(data) <= limit:
        assert out == text
        return
    kept, _, tail = out.rpartition("…[truncated ")
    assert data.startswith(kept.encode())
    assert len(kept.encode()) + int(tail.split(" ")[0]) == len(data)
    marker_only = len(out.encode()) > limit  # a limit smaller than the marker itself
    assert not marker_only or kept == ""


# -- a consumer's handler error holding a lone surrogate and a secret (issue 10 point 1):
# the consumer's own error line used to raise UnicodeEncodeError out of process(), which
# ended run() and left the rest of the queue unconsumed.


async def test_queue_consumer_survives_a_hostile_handler_error(
    pipeline: Pipeline, redis_server: Any
) -> None:
    import asyncio
    import uuid

    from otel_assist.queues import Message, QueueConsumer, QueueProducer, redis_client

    pipeline.reset()
    redis = redis_client.connect(redis_server.url)
    queue = f"hostile-{uuid.uuid4().hex[:8]}"
    handled: list[int] = []

    async def handler(msg: Message) -> None:
        handled.append(msg.payload["n"])
        if msg.payload["n"] == 1:
            raise OSError("cannot open /srv/in/\udcff.csv (dsn postgresql://u:zqLEAK6@db/x)")

    try:
        producer = QueueProducer(redis, queue)
        for n in range(5):
            await producer.push({"n": n})
        consumer = QueueConsumer(redis, queue, handler, sample=False)
        runner = asyncio.create_task(consumer.run())
        deadline = asyncio.get_running_loop().time() + 20
        while len(handled) < 5 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        consumer.stop()
        await asyncio.wait_for(runner, 10)
    finally:
        await redis.aclose()
    assert sorted(handled) == [0, 1, 2, 3, 4]
    assert pipeline.telemetry.force_flush(5)
    text = pipeline.stream.getvalue()
    errors = [orjson.loads(line) for line in text.split("\n") if "handler failed" in line]
    assert len(errors) == 1
    assert "\\udcff.csv" in errors[0]["error"] and "zqLEAK6" not in text
    assert "zqLEAK6" not in repr(pipeline.exporter.records)


def test_records_from_other_opentelemetry_emitters_are_scrubbed_and_capped(
    pipeline: Pipeline,
) -> None:
    """A library logging through the OpenTelemetry Logs API directly (not structlog) gets
    the same scrubbing and caps, in the export thread."""
    from opentelemetry._logs import LogRecord

    pipeline.reset()
    otel_logger = pipeline.telemetry.logger_provider.get_logger("some.library")
    otel_logger.emit(
        LogRecord(
            body="connect postgresql://u:zqLEAK7@db/x \udcff",
            attributes={"api_key": "zqLEAK8", "blob": "b" * 100_000},
        )
    )
    assert pipeline.telemetry.force_flush(5)
    assert pipeline.exporter.rejected == 0
    [record] = pipeline.exporter.records
    assert "zqLEAK7" not in repr(record) and "zqLEAK8" not in repr(record)
    assert record["body"] == "connect postgresql://u:***@db/x \\udcff"
    assert "…[truncated " in record["blob"] and len(record["blob"]) <= 16_384
