"""A Loki STAND-IN for the tests (not Loki: Loki is AGPL and is never built or vendored here).

It reproduces the documented behaviour of the real Loki that the project depends on,
configured as ``monitoring/loki/loki.yaml`` configures Loki. Each rule cites the Loki
documentation it follows; the version the rules were checked against is ``LOKI_VERSION``
(the image pinned in docker-compose.yml; see docs/logs.md).

Ingest, ``POST /otlp/v1/logs`` (OTLP/HTTP protobuf, optionally gzip):
- index labels: only ``service.name`` and ``deployment.environment.name`` (loki.yaml's
  ``otlp_config.resource_attributes`` with ``ignore_defaults: true``); every other resource
  attribute and every log attribute becomes structured metadata;
- attribute names are normalised to Prometheus label names (dots become underscores);
- ``detected_level`` is derived from the OTLP severity (``discover_log_levels: true``);
- structured metadata over 64 KB (``max_structured_metadata_size``) refuses the record with
  Loki's 400 text; other records of the push are kept;
- lines over 256 KB are truncated (``max_line_size`` + ``max_line_size_truncate``);
- records older than 48 h are refused (``reject_old_samples_max_age``).

Query, ``GET /loki/api/v1/query_range`` (and ``/query``, ``/labels``,
``/label/<name>/values``, ``/ready``): the LogQL subset in ``tests/loki/logql.py``, with
Loki's refusals (400, plain text).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests import servers
from tests.loki import logql

#: The Loki release whose documented behaviour these rules were checked against; the same
#: value as the image tag pinned in docker-compose.yml (tests/loki/test_standin.py checks).
LOKI_VERSION = "3.7.8"

#: loki.yaml ``otlp_config.resource_attributes.attributes_config`` index_label entries.
INDEX_RESOURCE_ATTRIBUTES = ("service.name", "deployment.environment.name")
#: loki.yaml ``max_structured_metadata_size: 64KB`` (Loki's KB are 1024 bytes).
MAX_STRUCTURED_METADATA_BYTES = 64 * 1024
#: loki.yaml ``max_line_size: 256KB`` with ``max_line_size_truncate: true``.
MAX_LINE_BYTES = 256 * 1024
#: loki.yaml ``reject_old_samples_max_age: 48h`` and ``max_query_lookback: 48h``.
MAX_AGE_NS = 48 * 3600 * 10**9
#: Loki's default ``max_entries_limit_per_query`` (loki.yaml keeps it).
MAX_ENTRIES_LIMIT = 5000
#: Loki's default ``max_query_length`` (30d1h): longer ranges are refused.
MAX_QUERY_LENGTH_NS = (30 * 24 + 1) * 3600 * 10**9

_INVALID_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_]")


def label_name(attribute: str) -> str:
    """An OTLP attribute name as Loki stores it: every character that is not valid in a
    Prometheus label name becomes ``_`` (docs: send-data/otel, "dots (.) are converted to
    underscores (_)"), and a leading digit gets a ``_`` prefix."""
    name = _INVALID_LABEL_CHARS.sub("_", attribute)
    return f"_{name}" if name[:1].isdigit() else name


def detected_level(severity_number: int, severity_text: str) -> str:
    """Loki's ``detected_level`` for an OTLP record (``discover_log_levels``).

    The OTLP severity number ranges map to trace/debug/info/warn/error/fatal (OTel log data
    model: 1-4 TRACE ... 21-24 FATAL); without a number, the severity text is used; without
    either, Loki stores ``unknown``. Python's CRITICAL is exported as FATAL (21), so Loki
    shows it as ``fatal``; WARNING (13) as ``warn`` (both seen from Loki 3.7, issue 11).
    Only the base numbers (5, 9, 13, 17, 21) were checked against a real Loki, and they are
    all otel_assist emits; grafana/loki#18937 reports ``unknown`` for some in-between
    numbers (e.g. 10), which this stand-in maps by range instead."""
    if severity_number > 0:
        for upper, name in ((4, "trace"), (8, "debug"), (12, "info"), (16, "warn"), (20, "error")):
            if severity_number <= upper:
                return name
        return "fatal"
    text = severity_text.strip().lower()
    aliases = {
        "warning": "warn",
        "critical": "fatal",
        "err": "error",
        "eror": "error",
        "dbg": "debug",
        "inf": "info",
        "wrn": "warn",
    }
    text = aliases.get(text, text)
    if text in ("trace", "debug", "info", "warn", "error", "fatal"):
        return text
    return "unknown"


def _text(v: AnyValue) -> str:
    """An attribute value as Loki stores it in structured metadata: strings as they are,
    other scalars in their text form, arrays and maps as JSON."""
    kind = v.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind in ("int_value", "double_value"):
        return str(getattr(v, kind))
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return json.dumps(_value(v), separators=(",", ":"), default=str)


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


def stream_text(labels: dict[str, str]) -> str:
    """A label set written the way Loki's messages print it."""
    inner = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
    return "{" + inner + "}"


@dataclass
class ReceivedRecord:
    """One OTLP log record as it arrived (what the Collector tests count)."""

    resource: dict[str, Any]
    scope: str
    body: Any
    severity_text: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Entry:
    """One stored line: what a Loki query can see."""

    ts_ns: int
    line: str
    stream: tuple[tuple[str, str], ...]  # index labels
    metadata: tuple[tuple[str, str], ...]  # structured metadata (incl. detected_level)

    def labels(self) -> dict[str, str]:
        """Everything a label filter or a response sees (stream labels + metadata)."""
        return {**dict(self.stream), **dict(self.metadata)}


@dataclass
class Push:
    """What one OTLP request became: entries kept and the first refusal, if any."""

    entries: list[Entry] = field(default_factory=list)
    records: list[ReceivedRecord] = field(default_factory=list)
    error: str | None = None


def to_entries(request: ExportLogsServiceRequest, now_ns: int) -> Push:
    """Map an OTLP request to Loki entries the way Loki's OTLP endpoint does
    (https://grafana.com/docs/loki/v3.7.x/send-data/otel/#format-considerations)."""
    push = Push()
    for rl in request.resource_logs:
        resource_raw = {kv.key: _value(kv.value) for kv in rl.resource.attributes}
        stream: dict[str, str] = {}
        resource_meta: dict[str, str] = {}
        for kv in rl.resource.attributes:
            # attributes_config: index_label for the two listed; ignore_defaults drops
            # Loki's default index list; every other resource attribute is structured
            # metadata (the default action for resource attributes not indexed).
            if kv.key in INDEX_RESOURCE_ATTRIBUTES:
                stream[label_name(kv.key)] = _text(kv.value)
            else:
                resource_meta[label_name(kv.key)] = _text(kv.value)
        if "service_name" not in stream:
            # discover_service_name: [] -> Loki still sets service_name, to unknown_service.
            stream["service_name"] = "unknown_service"
        for sl in rl.scope_logs:
            scope_meta: dict[str, str] = {}
            # Scope name/version/attributes: structured metadata scope_name, scope_version.
            if sl.scope.name:
                scope_meta["scope_name"] = sl.scope.name
            if sl.scope.version:
                scope_meta["scope_version"] = sl.scope.version
            for kv in sl.scope.attributes:
                scope_meta[label_name(kv.key)] = _text(kv.value)
            for lr in sl.log_records:
                meta = dict(resource_meta)
                meta.update(scope_meta)
                # log_attributes: structured_metadata for every record attribute (.*).
                for kv in lr.attributes:
                    meta[label_name(kv.key)] = _text(kv.value)
                # severity_text and trace context are structured metadata too.
                if lr.severity_text:
                    meta["severity_text"] = lr.severity_text
                if lr.trace_id:
                    meta["trace_id"] = lr.trace_id.hex()
                if lr.span_id:
                    meta["span_id"] = lr.span_id.hex()
                meta["detected_level"] = detected_level(lr.severity_number, lr.severity_text)
                # The timestamp is time_unix_nano, else observed_time_unix_nano, else now.
                ts = lr.time_unix_nano or lr.observed_time_unix_nano or now_ns
                # The body, as a string, is the log line.
                line = _text(lr.body)
                size = sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())
                if size > MAX_STRUCTURED_METADATA_BYTES:
                    # max_structured_metadata_size: the record is refused (Loki's text).
                    push.error = push.error or (
                        f"stream '{stream_text(stream)}' has structured metadata too large: "
                        f"'{size}' bytes, limit: '{MAX_STRUCTURED_METADATA_BYTES}' bytes. "
                        "Please see `limits_config.max_structured_metadata_size` or contact "
                        "your Loki administrator to increase it."
                    )
                    continue
                if ts < now_ns - MAX_AGE_NS:
                    # reject_old_samples: older than reject_old_samples_max_age is refused.
                    push.error = push.error or (
                        f"entry for stream '{stream_text(stream)}' has timestamp too old: "
                        f"{_rfc3339(ts)}, oldest acceptable timestamp is: "
                        f"{_rfc3339(now_ns - MAX_AGE_NS)}"
                    )
                    continue
                raw = line.encode()
                if len(raw) > MAX_LINE_BYTES:
                    # max_line_size_truncate: the line is cut, the record kept.
                    line = raw[:MAX_LINE_BYTES].decode(errors="ignore")
                push.entries.append(
                    Entry(ts, line, tuple(sorted(stream.items())), tuple(sorted(meta.items())))
                )
                push.records.append(
                    ReceivedRecord(
                        resource=resource_raw,
                        scope=sl.scope.name,
                        body=_value(lr.body),
                        severity_text=lr.severity_text,
                        attributes={kv.key: _value(kv.value) for kv in lr.attributes},
                    )
                )
    return push


def _rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9).astimezone().isoformat()


# --------------------------------------------------------------------------- evaluation


class Store:
    """Every accepted entry, in arrival order (a test stand-in keeps it all in memory)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.lock = threading.Lock()

    def add(self, entries: Iterable[Entry]) -> None:
        with self.lock:
            self.entries.extend(entries)

    def snapshot(self) -> list[Entry]:
        with self.lock:
            return list(self.entries)


def _select(entries: list[Entry], query: logql.LogQuery, start: int, end: int) -> list[Entry]:
    kept = []
    for e in entries:
        if not start <= e.ts_ns < end:
            continue
        stream = dict(e.stream)
        # The selector only sees index labels (stream labels), never structured metadata.
        if not all(m.matches(stream.get(m.name, "")) for m in query.selector):
            continue
        labels = e.labels()
        if all(
            s.keeps(e.line) if isinstance(s, logql.LineFilter) else s.keeps(labels)
            for s in query.stages
        ):
            kept.append(e)
    return kept


def streams_result(
    entries: list[Entry], query: logql.LogQuery, start: int, end: int, limit: int, forward: bool
) -> list[dict[str, Any]]:
    """``resultType: streams``: lines grouped by their full label set (stream labels merged
    with structured metadata, Loki's default response encoding), ``limit`` lines in all,
    newest first unless ``direction=forward``."""
    chosen = sorted(_select(entries, query, start, end), key=lambda e: e.ts_ns, reverse=not forward)
    chosen = chosen[:limit]
    groups: dict[tuple[tuple[str, str], ...], list[list[str]]] = {}
    for e in chosen:
        key = tuple(sorted(e.labels().items()))
        groups.setdefault(key, []).append([str(e.ts_ns), e.line])
    return [{"stream": dict(k), "values": v} for k, v in groups.items()]


def _range_series(
    entries: list[Entry], agg: logql.RangeAggregation, steps: list[int]
) -> dict[tuple[tuple[str, str], ...], dict[int, float]]:
    first = steps[0] - agg.range_ns
    chosen = _select(entries, agg.query, first, steps[-1] + 1)
    series: dict[tuple[tuple[str, str], ...], dict[int, float]] = {}
    for e in chosen:
        key = tuple(sorted(e.labels().items()))
        for t in steps:
            # A range vector at t covers (t - range, t].
            if t - agg.range_ns < e.ts_ns <= t:
                points = series.setdefault(key, {})
                points[t] = points.get(t, 0.0) + 1.0
    if agg.function == "rate":
        seconds = agg.range_ns / 1e9
        for points in series.values():
            for t in points:
                points[t] /= seconds
    return series


def matrix_result(entries: list[Entry], expr: logql.Expr, steps: list[int]) -> list[dict[str, Any]]:
    def evaluate(
        node: logql.RangeAggregation | logql.VectorAggregation,
    ) -> dict[tuple[tuple[str, str], ...], dict[int, float]]:
        if isinstance(node, logql.RangeAggregation):
            return _range_series(entries, node, steps)
        inner = evaluate(node.inner)
        out: dict[tuple[tuple[str, str], ...], dict[int, float]] = {}
        for key, points in inner.items():
            labels = dict(key)
            group = tuple(sorted((k, labels.get(k, "")) for k in (node.by or ()) if labels.get(k)))
            target = out.setdefault(group, {})
            for t, v in points.items():
                target[t] = target.get(t, 0.0) + v
        return out

    assert not isinstance(expr, logql.LogQuery)
    series = evaluate(expr)
    return [
        {
            "metric": dict(key),
            "values": [[t / 1e9, _num(points[t])] for t in sorted(points)],
        }
        for key, points in series.items()
    ]


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


# --------------------------------------------------------------------------- HTTP


class QueryError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def parse_time(raw: str | None, default_ns: int) -> int:
    """Loki accepts nanosecond integers, float seconds or RFC3339 for start/end."""
    if raw is None or raw == "":
        return default_ns
    try:
        if re.fullmatch(r"\d+", raw):
            value = int(raw)
            return value if value > 10**12 else value * 10**9
        if re.fullmatch(r"\d+\.\d*", raw):
            return int(float(raw) * 1e9)
        return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp() * 1e9)
    except (ValueError, OverflowError):
        raise QueryError(400, f'invalid parameter "time": cannot parse "{raw}"') from None


class LokiStandIn:
    """The stand-in server. ``endpoint`` is what the Collector's LOKI_OTLP_ENDPOINT gets;
    ``url`` is what a Loki client (rest_service's LOKI_URL) gets."""

    path = "/otlp/v1/logs"

    def __init__(self, *, startup_seconds: float = 0.0) -> None:
        self.port = servers.free_port()
        self.store = Store()
        self.records: list[ReceivedRecord] = []
        self.requests = 0
        self.rejected = 0
        self.refusals: list[str] = []
        self.query_headers: list[dict[str, str]] = []
        self._startup_seconds = startup_seconds
        self._started_at = 0.0
        self._reject_status = 0
        self._reject_left = 0
        self._reject_until = 0.0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """What the Collector's LOKI_OTLP_ENDPOINT is set to (the exporter adds /v1/logs)."""
        return f"http://127.0.0.1:{self.port}/otlp"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LokiStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with stand_in._lock:
                    stand_in._connections.add(self.connection)

            def finish(self) -> None:
                with stand_in._lock:
                    stand_in._connections.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if stand_in._server is None:  # down: drop the connection, answer nothing
                    self.close_connection = True
                    return
                if self.path != stand_in.path:
                    self._reply(404, b"404 page not found\n", "text/plain")
                    return
                # Loki accepts pushes as soon as its HTTP server is up, even while /ready
                # still answers 503 during start-up (seen with Loki 3.7, issue 11).
                try:
                    if self.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    request = ExportLogsServiceRequest()
                    request.ParseFromString(body)
                except (OSError, DecodeError) as exc:
                    self._reply(400, f"failed to parse push request: {exc}".encode(), "text/plain")
                    return
                status = stand_in._rejection()
                if status is not None:
                    self._reply(status, b'{"message": "rejected by the test"}', "application/json")
                    return
                push = to_entries(request, time.time_ns())
                stand_in._keep(push)
                if push.error is not None:
                    # Loki's distributor keeps the entries that pass validation and answers
                    # 400 with the first validation error for the push as a whole.
                    self._reply(400, push.error.encode(), "text/plain; charset=utf-8")
                    return
                self._reply(
                    200,
                    ExportLogsServiceResponse().SerializeToString(),
                    "application/x-protobuf",
                )

            def do_GET(self) -> None:
                if stand_in._server is None:
                    self.close_connection = True
                    return
                split = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(split.query).items()}
                with stand_in._lock:
                    stand_in.query_headers.append({k.lower(): v for k, v in self.headers.items()})
                try:
                    code, payload = stand_in.handle_get(split.path, params)
                except QueryError as exc:
                    self._reply(exc.status, exc.text.encode(), "text/plain; charset=utf-8")
                    return
                if isinstance(payload, str):
                    self._reply(code, payload.encode(), "text/plain; charset=utf-8")
                else:
                    self._reply(code, json.dumps(payload).encode(), "application/json")

            def _reply(self, code: int, payload: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Outage: the port stops listening (connection refused), like a Loki that is down.

        Kept-alive connections are cut too, so nothing slips through them."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def reject(self, status: int, *, requests: int = 0, seconds: float = 0.0) -> None:
        """Answer ``status`` instead of accepting: for the next ``requests`` pushes or for
        ``seconds`` (what Loki does when rate limited, 429, or when a push is invalid, 400)."""
        with self._lock:
            self._reject_status = status
            self._reject_left = requests
            self._reject_until = time.monotonic() + seconds

    def _rejection(self) -> int | None:
        with self._lock:
            if self._reject_left > 0:
                self._reject_left -= 1
            elif time.monotonic() >= self._reject_until:
                return None
            self.rejected += 1
            return self._reject_status

    def _keep(self, push: Push) -> None:
        self.store.add(push.entries)
        with self._lock:
            self.requests += 1
            self.records.extend(push.records)
            if push.error is not None:
                self.refusals.append(push.error)

    # ------------------------------------------------------------------ queries

    def handle_get(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        if path == "/ready":
            if time.monotonic() - self._started_at < self._startup_seconds:
                return 503, "Ingester not ready: waiting for 15s after being ready\n"
            return 200, "ready\n"
        now = time.time_ns()
        if path == "/loki/api/v1/query_range":
            return 200, self.query_range(params, now)
        if path == "/loki/api/v1/query":
            params = dict(params)
            at = parse_time(params.get("time"), now)
            params.update(start=str(at - 3600 * 10**9), end=str(at), step="3600")
            return 200, self.query_range(params, now)
        if path == "/loki/api/v1/labels":
            start, end = self._window(params, now)
            names = sorted(
                {k for e in self.store.snapshot() if start <= e.ts_ns < end for k, _ in e.stream}
            )
            return 200, {"status": "success", "data": names}
        m = re.fullmatch(r"/loki/api/v1/label/([^/]+)/values", path)
        if m:
            start, end = self._window(params, now)
            values = sorted(
                {
                    v
                    for e in self.store.snapshot()
                    if start <= e.ts_ns < end
                    for k, v in e.stream
                    if k == m.group(1)
                }
            )
            return 200, {"status": "success", "data": values}
        return 404, "404 page not found\n"

    def _window(self, params: dict[str, str], now: int) -> tuple[int, int]:
        end = parse_time(params.get("end"), now)
        # The query API's default start is one hour before end.
        start = parse_time(params.get("start"), end - 3600 * 10**9)
        if end < start:
            raise QueryError(400, "end timestamp must not be before or equal to start time")
        if end - start > MAX_QUERY_LENGTH_NS:
            raise QueryError(
                400,
                f"the query time range exceeds the limit (query length: "
                f"{(end - start) / 3.6e12:.0f}h, limit: 721h)",
            )
        # max_query_lookback: data older than 48h is not searched (the start is clamped).
        # The query API returns lines with start <= timestamp < end (docs: query_range).
        start = max(start, now - MAX_AGE_NS)
        return start, end

    def query_range(self, params: dict[str, str], now: int) -> dict[str, Any]:
        text = params.get("query", "")
        try:
            expr = logql.parse(text)
        except logql.LogQLError as exc:
            raise QueryError(400, str(exc)) from None
        except logql.NotInStandIn as exc:
            raise QueryError(501, f"not implemented by the Loki stand-in: {exc}") from None
        start, end = self._window(params, now)
        try:
            limit = int(params.get("limit") or 100)
        except ValueError:
            raise QueryError(400, f'invalid parameter "limit": {params["limit"]!r}') from None
        if limit <= 0:
            raise QueryError(400, "limit must be a positive value")
        if limit > MAX_ENTRIES_LIMIT:
            raise QueryError(
                400,
                f"max entries limit per query exceeded, limit > max_entries_limit_per_query "
                f"({limit} > {MAX_ENTRIES_LIMIT})",
            )
        entries = self.store.snapshot()
        stats: dict[str, Any] = {"summary": {}}
        if isinstance(expr, logql.LogQuery):
            forward = params.get("direction", "backward").lower() == "forward"
            result = streams_result(entries, expr, start, end, limit, forward)
            return {
                "status": "success",
                "data": {"resultType": "streams", "result": result, "stats": stats},
            }
        step_raw = params.get("step")
        if step_raw:
            try:
                step_ns = (
                    logql.parse_duration(step_raw)
                    if not re.fullmatch(r"\d+(\.\d+)?", step_raw)
                    else int(float(step_raw) * 1e9)
                )
            except logql.LogQLError:
                raise QueryError(400, f'invalid parameter "step": {step_raw!r}') from None
        else:
            # Loki's default step: the range divided into about 250 points, at least 1s.
            step_ns = max(10**9, (end - start) // 250)
        if step_ns <= 0 or (end - start) // step_ns > 11_000:
            # Loki refuses more than 11,000 points per series.
            raise QueryError(
                400,
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing "
                "the query resolution (?step=XX)",
            )
        steps = list(range(start, end + 1, step_ns))  # start, start+step, ... <= end
        return {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": matrix_result(entries, expr, steps),
                "stats": stats,
            },
        }

    # ------------------------------------------------------------------ for the tests

    def snapshot(self) -> list[ReceivedRecord]:
        with self._lock:
            return list(self.records)

    def entries(self) -> list[Entry]:
        return self.store.snapshot()

    def seqs(self, service: str | None = None) -> list[int]:
        """``seq`` of every received message_processed record (with duplicates)."""
        return [
            int(r.attributes["seq"])
            for r in self.snapshot()
            if r.attributes.get("event_type") == "message_processed"
            and (service is None or r.resource.get("service.name") == service)
        ]
