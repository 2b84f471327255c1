"""The bridge from structlog to OpenTelemetry logs, and the bounded queue behind it.

Why not the SDK's ``Logger.emit`` + ``BatchLogRecordProcessor`` on the hot path: building a
``ReadWriteLogRecord`` validates every attribute under a lock and costs about twice a whole
structlog JSON line (see ``bench/log_overhead.py``). Here the log call only appends the
already-processed event dict to a bounded deque; a background thread turns batches of them
into ``ReadableLogRecord`` objects and hands them to the OTLP/HTTP exporter (the stock one,
serializing with ``otlp_log_encoder``: see ``otlp_log_exporter.py``). The SDK
``LoggerProvider`` is still installed and feeds the same queue (``QueueLogProcessor``), so
records from other OpenTelemetry users leave through the same exporter.

A full queue or a failing exporter costs records, never the caller: both are counted in
``otel_assist_log_records_dropped_total``.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

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
from otel_assist.log_processors import TIMESTAMP_NS_KEY, EventDict

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
    if value is None or isinstance(value, str | bool | float):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, list | tuple):
        items = [v for v in value if v is not None]
        if items and all(isinstance(v, str) for v in items):
            return tuple(items)
        return _json_text(items)
    if isinstance(value, dict):
        return _json_text(value)
    return str(value)


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # keys that are not strings, integers beyond 64 bits
        return str(value)


_SCALARS = frozenset({str, bool, float})
_INT_MIN, _INT_MAX = -(2**63), 2**63


def to_attributes(event_dict: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for key, value in event_dict.items():
        if key in _NOT_ATTRIBUTES:
            continue
        kind = type(value)
        if kind not in _SCALARS and not (kind is int and _INT_MIN <= value < _INT_MAX):
            value = clean_value(value)
            if value is None:
                continue
        attributes[_RENAMED.get(key, key)] = value
    return attributes


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


def to_log_record(ts: int, event_dict: Mapping[str, Any]) -> LogRecord:
    """The OpenTelemetry LogRecord for one processed structlog event dict."""
    severity_number, severity_text = SEVERITY.get(
        str(event_dict.get("level", "info")), SEVERITY["info"]
    )
    body = event_dict.get("event")
    return BridgedLogRecord.bridged(
        ts,
        severity_number,
        severity_text,
        body if isinstance(body, str) else str(body),
        to_attributes(event_dict),
    )


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
    """A bounded in-memory queue of pending records and the thread that exports them."""

    def __init__(
        self,
        exporter: LogRecordExporter | None,
        resource: Resource,
        max_size: int = 8192,
        batch_size: int = 512,
        interval_s: float = 1.0,
    ) -> None:
        self.exporter = exporter
        self.resource = resource
        self.max_size = max_size
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.dropped = {"queue_full": 0, "export_failed": 0}
        self.exported = 0
        self.worker_errors = 0
        self._items: deque[Any] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        # An exporter that leaves out records it cannot encode (EncodingOTLPLogExporter)
        # says how many, so they are counted as export_failed rather than as exported.
        self._take_rejected = getattr(exporter, "take_rejected", None)
        if exporter is not None:
            self._start_thread()
            _register_fork_hook(self)

    # -- producer side (any thread, hot path)

    def put(self, item: Any) -> None:
        """Enqueue ``(timestamp_ns, event_dict)`` or an SDK record; drop and count when
        full."""
        if self.exporter is None or self._stopped:
            return
        items = self._items
        size = len(items)
        if size >= self.max_size:
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
            if self._stopped and not self._items:
                return

    def _export_available(self) -> None:
        while self._items:
            batch = self._take_batch()
            try:
                self._export(batch)
            finally:
                with self._idle:
                    self._in_flight = 0
                    self._idle.notify_all()

    def _take_batch(self) -> list[Any]:
        batch: list[Any] = []
        with self._idle:
            while self._items and len(batch) < self.batch_size:
                batch.append(self._items.popleft())
            self._in_flight = len(batch)
        return batch

    def _export(self, batch: Sequence[Any]) -> None:
        assert self.exporter is not None
        records = []
        for item in batch:
            try:
                records.append(self._readable(item))
            except Exception:  # one unconvertible record must not cost the batch
                self.dropped["export_failed"] += 1
        try:
            result = self.exporter.export(records)
        except Exception:  # an exporter must never take the thread (or the host) down
            result = LogRecordExportResult.FAILURE
        rejected = self._take_rejected() if self._take_rejected is not None else 0
        if result == LogRecordExportResult.SUCCESS:
            self.exported += len(records) - rejected
            self.dropped["export_failed"] += rejected
        else:
            self.dropped["export_failed"] += len(records)

    def _readable(self, item: Any) -> ReadableLogRecord:
        if isinstance(item, ReadWriteLogRecord):
            return ReadableLogRecord(
                log_record=item.log_record,
                # This process's current resource: the one global LoggerProvider outlives
                # rebuilds, so its own resource may be a forked parent's.
                resource=self.resource,
                instrumentation_scope=item.instrumentation_scope,
                limits=item.limits,
            )
        ts, event_dict = item
        return ReadableLogRecord(to_log_record(ts, event_dict), self.resource, _SCOPE)

    # -- lifecycle

    def force_flush(self, timeout_s: float = 10.0) -> bool:
        """Export everything queued so far; True when done within ``timeout_s``."""
        if self.exporter is None:
            return True
        deadline = time.monotonic() + timeout_s
        self._wake.set()
        with self._idle:
            while self._items or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.set()
                self._idle.wait(min(remaining, 0.05))
        return True

    def shutdown(self, timeout_s: float = 10.0) -> None:
        if self._stopped:
            return
        self.force_flush(timeout_s)
        self._stopped = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.exporter is not None:
            self.exporter.shutdown()

    def abandon(self) -> None:
        """Stop without exporting: a forked child drops the parent's queue (its records
        are the parent's to send) and lets the export thread end."""
        self._stopped = True
        self._items.clear()
        self._wake.set()

    def _after_fork(self) -> None:
        """In a forked child the export thread does not exist: start a fresh one. A queue
        built in the child already (configure() rebuilding after the fork runs first) has
        its thread and is left alone."""
        if self._thread is not None and self._thread_pid == os.getpid():
            return
        self._items.clear()
        self._idle = threading.Condition()
        self._wake = threading.Event()
        self._in_flight = 0
        if not self._stopped:
            self._start_thread()


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
        if self.counts is not None:
            self.counts.add(event_dict.get("level", "info"))  # a dict increment
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
        self.count += len(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
