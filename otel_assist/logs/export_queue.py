"""The bridge from structlog to OpenTelemetry logs, and the bounded queue behind it.

Why not the SDK's ``Logger.emit`` + ``BatchLogRecordProcessor`` on the hot path: building a
``ReadWriteLogRecord`` validates every attribute under a lock and costs about twice a whole
structlog JSON line (see ``bench/log_overhead.py``). Here the log call only appends the
already-processed event dict to a bounded deque; a background thread turns batches of them
into ``ReadableLogRecord`` objects and hands them to the OTLP/HTTP exporter
(``otlp_http_log_exporter``, serializing with ``otlp_log_encoder``). The SDK
``LoggerProvider`` is still installed and feeds the same queue (``QueueLogProcessor``), so
records from other OpenTelemetry users leave through the same exporter.

A full queue or a failing exporter costs records, never the caller: both are counted in
``otel_assist_log_records_dropped_total``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TraceFlags

from otel_assist._otel_compat import (
    LogRecord,
    LogRecordExporter,
    LogRecordExportResult,
    LogRecordProcessor,
    ReadableLogRecord,
    ReadWriteLogRecord,
    SeverityNumber,
)
from otel_assist.logs.otlp_encoder import EncodedLogRecord
from otel_assist.logs.processors import TIMESTAMP_NS_KEY, EventDict
from otel_assist.redaction import Redactor, escape_surrogates, safe_str
from otel_assist.retry_backoff import spread

SEVERITY = {
    "debug": (SeverityNumber.DEBUG, "DEBUG"),
    "info": (SeverityNumber.INFO, "INFO"),
    "warning": (SeverityNumber.WARN, "WARN"),
    "error": (SeverityNumber.ERROR, "ERROR"),
    "critical": (SeverityNumber.FATAL, "FATAL"),
}
LEVELS = tuple(SEVERITY)

# Fields that are not attributes: the body, the severity, the resource's service name and
# our private timestamp. The seed plan's callsite names map to semantic conventions.
_NOT_ATTRIBUTES = frozenset({"event", "level", "timestamp", "service", TIMESTAMP_NS_KEY})
_RENAMED = {"filename": "code.filepath", "lineno": "code.lineno", "func_name": "code.function"}
_SCOPE = InstrumentationScope("otel_assist.logs")
# A non-empty context: the LogRecord constructor looks up the current context (and its
# span) only when given a falsy one, and a bridged record has neither.
_RECORD_CONTEXT = Context({"otel_assist.bridged": True})


def clean_value(value: Any) -> Any:
    """Coerce a value to an OpenTelemetry attribute type (None means: leave it out)."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, str):
        return escape_surrogates(value)
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, list | tuple):
        items = [v for v in value if v is not None]
        if items and all(isinstance(v, str) for v in items):
            return tuple(escape_surrogates(v) for v in items)
        return _json_text(items)
    if isinstance(value, dict):
        return _json_text(value)
    return safe_str(value)


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value, default=safe_str).decode()
    except Exception:  # keys that are not strings, integers beyond 64 bits, surrogates
        try:
            return orjson.dumps(_FALLBACK_REDACTOR.redact(value), default=safe_str).decode()
        except Exception:
            return safe_str(value)


_FALLBACK_REDACTOR = Redactor()
_SCALARS = frozenset({str, bool, float})
_INT_MIN, _INT_MAX = -(2**63), 2**63


def to_attributes(event_dict: Mapping[str, Any]) -> dict[str, Any]:
    return sized_attributes(event_dict)[0]


def sized_attributes(event_dict: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """The record's attributes and an upper bound of their size in characters (names
    included), so the common small record skips the byte-exact size caps."""
    attributes: dict[str, Any] = {}
    size = 0
    for key, value in event_dict.items():
        if key in _NOT_ATTRIBUTES:
            continue
        kind = type(value)
        if kind is str:
            size += len(value)
        elif kind not in _SCALARS and not (kind is int and _INT_MIN <= value < _INT_MAX):
            value = clean_value(value)
            if value is None:
                continue
            size += len(value) if type(value) is str else _LARGE
        attributes[_RENAMED.get(key, key)] = value
    # names, and 24 characters for each number's or bool's text
    size += sum(map(len, attributes)) + 24 * len(attributes)
    return attributes, size


_LARGE = 1 << 40  # a size that always sends a record through the exact caps


_NO_TRACE = (0, 0, TraceFlags(TraceFlags.DEFAULT))


class BridgedLogRecord(LogRecord):
    """An OpenTelemetry API ``LogRecord`` built without the general constructor.

    ``LogRecord.__init__`` parses a dozen keyword arguments and looks up the current span
    for trace ids that are always empty here (tracing is off): about half the cost of
    bridging a log line. This sets the same attributes directly; a test compares them
    with a record made through ``__init__`` so an SDK upgrade cannot drift silently.
    """

    @classmethod
    def bridged(
        cls,
        ts: int,
        severity_number: SeverityNumber,
        severity_text: str,
        body: str,
        attributes: dict[str, Any],
    ) -> BridgedLogRecord:
        record = cls.__new__(cls)
        record.timestamp = ts
        record.observed_timestamp = ts
        record.context = _RECORD_CONTEXT
        record.trace_id, record.span_id, record.trace_flags = _NO_TRACE
        record.severity_text = severity_text
        record.severity_number = severity_number
        record.body = body
        record.attributes = attributes
        record.event_name = None
        record.exception = None
        return record


@dataclass(frozen=True)
class RecordLimits:
    """Size caps applied to each record in the export thread, in UTF-8 bytes.

    Why: Loki refuses a record whose structured metadata (every attribute, name and
    value) passes ``max_structured_metadata_size`` (64 KiB by default), and the Collector
    then drops the whole request it came in. A 100 KB exception message would be ~200 KB
    (message + stacktrace). Truncated records are delivered, with a ``…[truncated N
    bytes]`` marker; none is refused. The defaults leave 16 KiB of that limit for resource
    attributes, which Loki also stores as structured metadata.
    """

    attribute_bytes: int = 16_384
    attributes_bytes: int = 49_152
    body_bytes: int = 65_536
    # Loki also refuses more than 128 structured-metadata entries per record
    # (max_structured_metadata_entries_count); resource attributes count too.
    attribute_count: int = 96


def truncate_text(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, marker included."""
    if len(text) * 4 <= max_bytes:  # cannot be too long, whatever its characters
        return text
    data = text.encode("utf-8", "backslashreplace")
    if len(data) <= max_bytes:
        return text
    room = max(0, max_bytes - len(_MARKER.format(len(data)).encode()))
    kept = data[:room].decode("utf-8", "ignore")
    return kept + _MARKER.format(len(data) - len(kept.encode()))


_MARKER = "…[truncated {} bytes]"


def limit_attributes(attributes: dict[str, Any], limits: RecordLimits) -> dict[str, Any]:
    """Each string attribute capped at ``attribute_bytes``, all of them together (names
    included) at ``attributes_bytes``, and at most ``attribute_count`` of them. A string
    that does not fit is truncated (with its marker) while there is room for a useful
    part of it; attributes past the budget or the count are left out, and how many is
    said in ``otel_assist.attributes_dropped``. In place; returned for convenience."""
    budget = limits.attributes_bytes - _DROPPED_ROOM
    kept = 0
    dropped: list[str] = []
    for key, value in attributes.items():
        if kept >= limits.attribute_count - 1:
            dropped.append(key)
            continue
        if type(value) is str:
            size = len(value) if value.isascii() else len(value.encode("utf-8", "replace"))
            room = min(limits.attribute_bytes, budget - len(key))
            if size > room:
                if room < _MIN_USEFUL:
                    dropped.append(key)
                    continue
                value = truncate_text(value, room)
                attributes[key] = value
                size = len(value.encode("utf-8", "replace"))
        elif type(value) is tuple:
            value = tuple(truncate_text(v, limits.attribute_bytes) for v in value)
            attributes[key] = value
            size = sum(len(v.encode("utf-8", "replace")) for v in value)
        else:
            size = len(str(value))
        if len(key) + size > budget:
            dropped.append(key)
            continue
        budget -= len(key) + size
        kept += 1
    for key in dropped:
        del attributes[key]
    if dropped:
        attributes[_DROPPED_KEY] = len(dropped)
    return attributes


_DROPPED_KEY = "otel_assist.attributes_dropped"
_DROPPED_ROOM = len(_DROPPED_KEY) + 20
_MIN_USEFUL = 256  # less room than this: leave the attribute out rather than a stub


def to_log_record(
    ts: int, event_dict: Mapping[str, Any], limits: RecordLimits | None = None
) -> LogRecord:
    """The OpenTelemetry LogRecord for one processed structlog event dict."""
    severity_number, severity_text = SEVERITY.get(
        str(event_dict.get("level", "info")), SEVERITY["info"]
    )
    body = event_dict.get("event")
    body = body if isinstance(body, str) else safe_str(body)
    attributes, size = sized_attributes(event_dict)
    if limits is not None:
        if len(body) * 4 > limits.body_bytes:
            body = truncate_text(body, limits.body_bytes)
        # UTF-8 takes at most 4 bytes a character: below this nothing can be over a cap.
        cap = min(limits.attribute_bytes, limits.attributes_bytes)
        if size * 4 > cap or len(attributes) >= limits.attribute_count:
            attributes = limit_attributes(attributes, limits)
    return BridgedLogRecord.bridged(ts, severity_number, severity_text, body, attributes)


class LevelCounts:
    """Log records per level, counted with plain integers.

    An ObservableCounter reads them at collection time, so counting costs the log call a
    list increment instead of an SDK ``Counter.add``.
    """

    def __init__(self) -> None:
        self.counts = dict.fromkeys(LEVELS, 0)

    def add(self, level: str) -> None:
        if level in self.counts:
            self.counts[level] += 1


class LogQueue:
    """A bounded in-memory queue of pending records and the thread that exports them.

    Loss policy (``docs/log-export.md``): while the endpoint is unreachable or answers
    with a retryable status (connection refused, timeout, 408/429/5xx), the batch in
    flight is kept and retried with exponential backoff (``retry_max_backoff_s`` at most)
    until the endpoint returns, and new records wait behind it. Only a full queue drops,
    and it drops the *newest* records (the call that finds it full), counted as
    ``queue_full``: what already waits keeps its order. A batch the endpoint refuses for
    good (400, 413) and records still waiting when shutdown's deadline passes are counted
    as ``export_failed``. Nothing is ever dropped silently.
    """

    def __init__(
        self,
        exporter: LogRecordExporter | None,
        resource: Resource,
        max_size: int = 8192,
        batch_size: int = 2048,
        interval_s: float = 1.0,
        limits: RecordLimits | None = None,
        retry_max_backoff_s: float = 5.0,
    ) -> None:
        self.exporter = exporter
        self.resource = resource
        self.max_size = max_size
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.limits = limits or RecordLimits()
        self.retry_max_backoff_s = retry_max_backoff_s
        self.redactor: Redactor | None = None  # set by configure_logging: SDK records too
        self.dropped = {"queue_full": 0, "export_failed": 0}
        self.exported = 0
        self.retries = 0
        self.worker_errors = 0
        self.health = ExportHealth(getattr(exporter, "endpoint", None))
        self._items: deque[Any] = deque()
        self._pending: list[ReadableLogRecord] = []
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._flushes = 0  # force_flush calls waiting: the export thread drains fully
        self._stopped = False
        self._give_up = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        # An exporter that leaves out records (OTLPHttpLogExporter: ones it cannot encode
        # and ones the endpoint reports as rejected) says how many, so they are counted as
        # export_failed rather than as exported.
        self._take_rejected = getattr(exporter, "take_rejected", None)
        # An exporter with our encoder gets structlog lines in their wire form, written
        # straight from the event dict (no LogRecord objects; see event_record).
        self._encoder = getattr(exporter, "encoder", None)
        if not callable(getattr(self._encoder, "event_record", None)):
            self._encoder = None
        cap = min(self.limits.attribute_bytes, self.limits.attributes_bytes)
        self._fast_chars = min(cap, self.limits.body_bytes) // 4
        if exporter is not None:
            self._start_thread()
            _register_fork_hook(self)

    # -- producer side (any thread, hot path)

    def put(self, item: Any) -> None:
        """Enqueue ``(timestamp_ns, event_dict)`` or an SDK record; drop and count when
        full (the batch being retried counts towards the bound)."""
        if self.exporter is None or self._stopped:
            return
        items = self._items
        size = len(items)
        if size + self._in_flight >= self.max_size:
            self.dropped["queue_full"] += 1
            return
        items.append(item)
        # Wake the exporter when a batch is complete: once, at the crossing. Setting the
        # Event on every put above the mark costs a lock round trip per log call for as
        # long as the exporter is behind.
        if size + 1 == self.batch_size:
            self._wake.set()

    # -- consumer side

    def _start_thread(self) -> None:
        self._thread_pid = os.getpid()
        self._thread = threading.Thread(
            target=self._run, name="otel-assist-log-export", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            try:
                self._export_available()
            except Exception:  # the export thread must outlive any single failure
                self.worker_errors += 1
            if self._stopped and (not self._items or self._give_up.is_set()):
                return

    def _export_available(self) -> None:
        """Export what is queued: once woken (a full batch, the interval, a flush), the
        first batch whatever its size, then only full batches unless a flush or shutdown
        waits. Why: draining to empty sent the records that arrived during an export as
        a batch of their own, so under steady load every full batch was followed by a
        small one that paid a whole request's cost (``bench/log_overhead.py`` measured
        batches shrinking to a few dozen records); they now wait for the next wake."""
        backoff = _FIRST_BACKOFF_S
        first = True
        while True:
            if not self._pending:
                items = len(self._items)
                if not items:
                    return
                if not first and items < self.batch_size and not (self._flushes or self._stopped):
                    return
                first = False
                # A full batch reached during the export set the wake; it is taken now,
                # so the wake would only send the rest early: the next crossing sets it.
                self._wake.clear()
                self._pending = self._convert(self._take_batch())
            if self._give_up.is_set():
                self._abandon_pending()
                return
            if self._export(self._pending):
                self._done_with_pending()
                backoff = _FIRST_BACKOFF_S
                continue
            # Retryable failure: keep the batch, wait, try again. A flush or shutdown
            # wakes the wait early; shutdown's deadline ends it (see shutdown()).
            self.retries += 1
            self._give_up.wait(spread(backoff, 0.2))
            backoff = min(backoff * 2, self.retry_max_backoff_s)

    def _take_batch(self) -> list[Any]:
        batch: list[Any] = []
        with self._idle:
            while self._items and len(batch) < self.batch_size:
                batch.append(self._items.popleft())
            self._in_flight = len(batch)
        return batch

    def _convert(self, batch: Sequence[Any]) -> list[ReadableLogRecord]:
        """The batch as the exporter takes it. With our encoder, structlog lines are
        written to their wire form in one call for the whole batch, and consecutive ones
        travel as one chunk of bytes (an ``EncodedLogRecord`` with its record count), so
        the per-record Python objects and calls of the general path are not paid for
        them; the rest (SDK records, lines the direct path leaves out) are converted one
        by one, in their place in the batch."""
        encoder = self._encoder
        direct: list[bytes | None]
        if encoder is not None:
            try:
                direct = encoder.event_records(
                    batch,
                    SEVERITY,
                    _NOT_ATTRIBUTES,
                    _RENAMED,
                    self._fast_chars,
                    self.limits.attribute_count,
                )
            except Exception:  # the general path below decides what becomes of them
                direct = [None] * len(batch)
        else:
            direct = [None] * len(batch)
        if direct and None not in direct:  # the usual batch: all written directly, one chunk
            lines = cast(list[bytes], direct)
            chunk: Any = EncodedLogRecord(b"".join(lines), self.resource, _SCOPE, len(lines))
            return [chunk]
        records: list[Any] = []
        run: list[bytes] = []
        for item, data in zip(batch, direct, strict=True):
            if data is not None:
                run.append(data)
                continue
            if run:
                records.append(EncodedLogRecord(b"".join(run), self.resource, _SCOPE, len(run)))
                run = []
            try:
                records.append(self._general(item))
            except Exception:  # one unconvertible record must not cost the batch
                self.dropped["export_failed"] += 1
        if run:
            records.append(EncodedLogRecord(b"".join(run), self.resource, _SCOPE, len(run)))
        return records

    def _done_with_pending(self) -> None:
        with self._idle:
            self._pending = []
            self._in_flight = 0
            self._idle.notify_all()

    def _abandon_pending(self) -> None:
        self.dropped["export_failed"] += record_count(self._pending) + len(self._items)
        self._items.clear()
        self._done_with_pending()

    def _export(self, records: list[ReadableLogRecord]) -> bool:
        """One attempt. True when the batch is done with (sent, or refused for good);
        False when it should be retried."""
        assert self.exporter is not None
        count = record_count(records)
        try:
            result = self.exporter.export(records)
        except Exception:  # an exporter must never take the thread (or the host) down
            result, retryable = LogRecordExportResult.FAILURE, False
        else:
            retryable = bool(getattr(self.exporter, "last_failure_retryable", False))
        rejected = self._take_rejected() if self._take_rejected is not None else 0
        if result == LogRecordExportResult.SUCCESS:
            self.exported += count - rejected
            self.dropped["export_failed"] += rejected
            self.health.succeeded(self)
            return True
        reason = getattr(self.exporter, "last_failure", None)
        if retryable and not self._give_up.is_set():
            self.health.failed(self, reason)
            return False
        self.dropped["export_failed"] += count
        if not self._give_up.is_set():
            self.health.refused(self, reason, count)
        return True

    def _readable(self, item: Any) -> ReadableLogRecord:
        """One item as the exporter takes it (what ``_convert`` does for a batch)."""
        return self._convert([item])[0]

    def _general(self, item: Any) -> ReadableLogRecord:
        if isinstance(item, ReadWriteLogRecord):
            return ReadableLogRecord(
                log_record=self._clean_sdk_record(item.log_record),
                # This process's current resource: the one global LoggerProvider outlives
                # rebuilds, so its own resource may be a forked parent's.
                resource=self.resource,
                instrumentation_scope=item.instrumentation_scope,
                limits=item.limits,
            )
        ts, event_dict = item
        return ReadableLogRecord(to_log_record(ts, event_dict, self.limits), self.resource, _SCOPE)

    def _clean_sdk_record(self, record: LogRecord) -> LogRecord:
        """Records from other OpenTelemetry emitters get what structlog lines get in the
        processor chain: secrets scrubbed, sizes capped (in the export thread)."""
        if self.redactor is not None:
            if isinstance(record.body, str):
                record.body = self.redactor.scrub(record.body)
            if record.attributes:
                masked = self.redactor.redact(dict(record.attributes))
                record.attributes = {k: clean_value(v) for k, v in masked.items()}
        if isinstance(record.body, str):
            record.body = truncate_text(record.body, self.limits.body_bytes)
        if record.attributes:
            record.attributes = limit_attributes(dict(record.attributes), self.limits)
        return record

    # -- lifecycle

    def force_flush(self, timeout_s: float = 10.0) -> bool:
        """Export everything queued so far; True when done within ``timeout_s``."""
        if self.exporter is None:
            return True
        deadline = time.monotonic() + timeout_s
        with self._idle:
            self._flushes += 1
        try:
            self._wake.set()
            with self._idle:
                while self._items or self._in_flight:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._wake.set()
                    self._idle.wait(min(remaining, 0.05))
            return True
        finally:
            with self._idle:
                self._flushes -= 1

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Flush for up to ``timeout_s``; what still waits then (the endpoint is down) is
        given up and counted as export_failed, so an exit never hangs on an outage."""
        if self._stopped:
            return
        flushed = self.force_flush(timeout_s)
        self._stopped = True
        if not flushed:
            self._give_up.set()
            if self.exporter is not None:
                self.exporter.shutdown()  # aborts the exporter's own retry wait
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if flushed and self.exporter is not None:
            self.exporter.shutdown()

    def abandon(self) -> None:
        """Stop without exporting: a forked child drops the parent's queue (its records
        are the parent's to send) and lets the export thread end."""
        self._stopped = True
        self._items.clear()
        self._give_up.set()
        self._wake.set()

    def _after_fork(self) -> None:
        """In a forked child the export thread does not exist: start a fresh one. A queue
        built in the child already (configure() rebuilding after the fork runs first) has
        its thread and is left alone."""
        if self._thread is not None and self._thread_pid == os.getpid():
            return
        self._items.clear()
        self._pending = []
        self._idle = threading.Condition()
        self._wake = threading.Event()
        self._give_up = threading.Event()
        self._in_flight = 0
        if not self._stopped:
            self._start_thread()


_FIRST_BACKOFF_S = 0.5


def record_count(records: Sequence[Any]) -> int:
    """Log records in a converted batch: a chunk of directly written lines counts as
    the lines it holds."""
    return sum(r.records if type(r) is EncodedLogRecord else 1 for r in records)


class ExportHealth:
    """What the service says about its log export: one warning when it starts failing
    (naming the endpoint and how to turn export off), nothing while it keeps failing (the
    drops are counted in otel_assist_log_records_dropped_total), one line when it works
    again. (The exporter, ``otlp_http_log_exporter``, writes no lines of its own.)"""

    def __init__(self, endpoint: str | None) -> None:
        self.endpoint = endpoint or "the OTLP endpoint"
        self.failing_since: float | None = None
        self._dropped_at_start = 0
        self._last_refusal = float("-inf")

    def failed(self, queue: LogQueue, reason: Any) -> None:
        if self.failing_since is not None:
            return
        self.failing_since = time.monotonic()
        self._dropped_at_start = queue.dropped["queue_full"]
        _health_logger.warning(
            "log export to %s failing (%s): records wait in memory (up to %d) and are "
            "retried until it answers; set OTEL_LOGS_EXPORTER=none to turn log export off",
            self.endpoint,
            reason or "no answer",
            queue.max_size,
        )

    def refused(self, queue: LogQueue, reason: Any, records: int) -> None:
        """A batch refused for good (HTTP 400, 413): said at most once a minute, with
        the count so far (retrying would not help; the records are counted)."""
        now = time.monotonic()
        if now - self._last_refusal < 60:
            return
        self._last_refusal = now
        _health_logger.warning(
            "log export to %s refused a batch (%s): %d records dropped, %d export_failed so far",
            self.endpoint,
            reason or "error",
            records,
            queue.dropped["export_failed"],
        )

    def succeeded(self, queue: LogQueue) -> None:
        if self.failing_since is None:
            return
        seconds = time.monotonic() - self.failing_since
        self.failing_since = None
        _health_logger.info(
            "log export to %s recovered after %.0f s; %d records dropped meanwhile (queue full)",
            self.endpoint,
            seconds,
            queue.dropped["queue_full"] - self._dropped_at_start,
        )


_health_logger = logging.getLogger("otel_assist.log_export")


_queues: weakref.WeakSet[LogQueue] = weakref.WeakSet()
_fork_hook_registered = False


def _register_fork_hook(queue: LogQueue) -> None:
    global _fork_hook_registered
    _queues.add(queue)
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_restart_queues_after_fork)
        _fork_hook_registered = True


def _restart_queues_after_fork() -> None:
    for queue in list(_queues):
        queue._after_fork()


class OtelBridge:
    """The structlog processor that makes every line also an OpenTelemetry log record.

    It sits just before the renderer, so the record sees exactly what the JSON line shows
    (masked, with correlation_id and exception fields).
    """

    def __init__(self, queue: LogQueue | None, counts: LevelCounts | None) -> None:
        self.queue = queue
        self.counts = counts

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        logger_name = event_dict.get("logger")
        # The exporter's own complaints must not feed back into the exporter, nor count as
        # the service's errors: export failures have their own counter.
        ts = event_dict.pop(TIMESTAMP_NS_KEY, None) or time.time_ns()
        if isinstance(logger_name, str) and logger_name.startswith("opentelemetry"):
            return event_dict
        counts = self.counts
        if counts is not None:  # LevelCounts.add, inline: a call less per line
            tally, level = counts.counts, event_dict.get("level", "info")
            if level in tally:
                tally[level] += 1
        if self.queue is not None:
            # The dict is not copied: after this processor only the renderer reads it;
            # the export thread builds the OpenTelemetry record from it.
            self.queue.put((ts, event_dict))
        return event_dict


class QueueLogProcessor(LogRecordProcessor):
    """SDK LogRecordProcessor that feeds the shared LogQueue (for non-structlog emitters)."""

    def __init__(self, queue: LogQueue) -> None:
        self.queue = queue

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self.queue.put(log_record)

    def shutdown(self) -> None:
        self.queue.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.queue.force_flush(timeout_millis / 1000)


class DiscardingExporter(LogRecordExporter):
    """Accepts and forgets records: for benchmarks and for OTEL_LOGS_EXPORTER=none tests."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.count += record_count(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
