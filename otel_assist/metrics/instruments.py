"""The metric catalog: every instrument otel-assist services emit, in one table.

Names follow DESIGN.md: OpenTelemetry semantic conventions where one exists (HTTP server
duration, GenAI client metrics, DB client duration), otherwise the seed plan's names as they
appear in Prometheus once the exporter adds ``_total`` / ``_seconds``. Buckets are explicit.

Attributes come from an allowlist per instrument. A value outside a fixed set, or beyond the
first ``attribute_limit`` distinct values of an open set (models, tools, queues, job types,
routes), is folded into ``_other``: a bug or a hostile input can never explode the series
count. user_id, correlation_id, raw paths and message text are never attributes.

Service code records in one line with the helpers at the bottom (``llm_call``,
``tool_call``, ``record_memory_operation`` ...). The catalog is built once per process on
:mod:`otel_assist.metrics.preaggregation` (plain-Python aggregation, handed to every metric reader
as OpenTelemetry data); ``configure()`` attaches it to its readers and starts it from zero,
so an instrument or folded attribute dict a call site keeps stays valid.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from opentelemetry.sdk.metrics.export import Metric, MetricReader

from otel_assist._otel_compat import attach_metric_producer
from otel_assist.event_types import LogEventType, emit
from otel_assist.metrics import preaggregation
from otel_assist.metrics.preaggregation import Aggregates

OTHER = "_other"
Kind = Literal["counter", "histogram", "gauge", "updown", "observable_counter"]

# Explicit boundaries, seconds.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
LLM_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
JOB_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
RAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)

SUCCESS_ERROR = frozenset({"success", "error"})
LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})
JOB_STATUSES = frozenset({"completed", "failed", "missed", "timed_out", "skipped", "cancelled"})


@dataclass(frozen=True)
class Spec:
    """One instrument. ``attributes`` maps each allowed key to a fixed value set, or to
    None for an open set bounded by the attribute limit."""

    name: str
    kind: Kind
    unit: str
    description: str
    attributes: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    buckets: tuple[float, ...] = ()
    #: Instrumentation scope (Prometheus: the ``otel_scope_name`` label; docs/metrics.md).
    scope: str = "otel_assist"

    @property
    def prometheus_name(self) -> str:
        base = self.name.replace(".", "_")
        suffix = {"s": "_seconds", "By": "_bytes"}.get(self.unit, "")
        if suffix and not base.endswith(suffix):
            base += suffix
        if self.kind in ("counter", "observable_counter"):
            base += "_total"
        return base


CATALOG: tuple[Spec, ...] = (
    # HTTP server (semantic conventions)
    Spec(
        "http.server.request.duration",
        "histogram",
        "s",
        "Duration of HTTP server requests.",
        {"http.request.method": None, "http.route": None, "http.response.status_code": None},
        HTTP_BUCKETS,
        scope="otel_assist.http",
    ),
    Spec(
        "http.server.active_requests",
        "updown",
        "{request}",
        "HTTP requests in flight.",
        {"http.request.method": None},
        scope="otel_assist.http",
    ),
    # Logs and the telemetry pipeline itself
    Spec(
        "log_records", "observable_counter", "{record}", "Log records by level.", {"level": LEVELS}
    ),
    Spec(
        "log_unknown_event_types",
        "counter",
        "{record}",
        "Log records whose event_type is outside LogEventType (kept, but counted).",
    ),
    Spec(
        "otel_assist.log_records.dropped",
        "observable_counter",
        "{record}",
        "Log records dropped before export (queue full or export failed).",
        {"reason": frozenset({"queue_full", "export_failed"})},
    ),
    # LLM (seed plan counter + GenAI semantic conventions)
    Spec(
        "llm_requests",
        "counter",
        "{request}",
        "LLM API requests.",
        {"model": None, "status": SUCCESS_ERROR},
    ),
    Spec(
        "gen_ai.client.operation.duration",
        "histogram",
        "s",
        "Duration of LLM calls.",
        {"gen_ai.request.model": None, "gen_ai.operation.name": None, "error.type": None},
        LLM_BUCKETS,
    ),
    Spec(
        "gen_ai.client.token.usage",
        "histogram",
        "{token}",
        "Tokens used per LLM call.",
        {
            "gen_ai.request.model": None,
            "gen_ai.operation.name": None,
            "gen_ai.token.type": frozenset({"input", "output"}),
        },
        TOKEN_BUCKETS,
    ),
    Spec(
        "tool_calls",
        "counter",
        "{call}",
        "Assistant tool calls.",
        {"tool_name": None, "status": SUCCESS_ERROR},
    ),
    Spec(
        "messages_processed",
        "counter",
        "{message}",
        "Messages processed end to end.",
        {"source": None, "status": SUCCESS_ERROR},
    ),
    Spec(
        "memory_operations",
        "counter",
        "{operation}",
        "User-memory operations.",
        {"operation": frozenset({"save", "retrieve", "search", "delete"}), "status": SUCCESS_ERROR},
    ),
    Spec(
        "rag_search_duration",
        "histogram",
        "s",
        "RAG search duration.",
        {"status": SUCCESS_ERROR},
        RAG_BUCKETS,
    ),
    # Redis queues
    Spec(
        "queue_messages",
        "counter",
        "{message}",
        "Queue messages pushed and popped.",
        {"queue_name": None, "direction": frozenset({"push", "pop"})},
    ),
    Spec(
        "queue_length", "gauge", "{message}", "Messages waiting in a queue.", {"queue_name": None}
    ),
    Spec(
        "queue_oldest_message_age",
        "gauge",
        "s",
        "Age of the oldest waiting message.",
        {"queue_name": None},
    ),
    Spec(
        "queue_wait_duration",
        "histogram",
        "s",
        "Time from enqueue to dequeue.",
        {"queue_name": None},
        QUEUE_BUCKETS,
    ),
    Spec(
        "queue_processing_duration",
        "histogram",
        "s",
        "Time to handle one message.",
        {"queue_name": None, "status": SUCCESS_ERROR},
        QUEUE_BUCKETS,
    ),
    Spec(
        "queue_invalid_messages",
        "counter",
        "{message}",
        "Messages without a valid envelope (handed on raw or dead-lettered).",
        {
            "queue_name": None,
            "reason": frozenset({"legacy", "invalid_json", "invalid_envelope", "too_large"}),
        },
    ),
    Spec(
        "queue_errors",
        "counter",
        "{error}",
        "Failed queue pushes and pops (the Redis error still reaches the caller).",
        {"queue_name": None, "direction": frozenset({"push", "pop"}), "error_type": None},
    ),
    Spec(
        "db.client.operation.duration",
        "histogram",
        "s",
        "Redis command duration.",
        {"db.system.name": frozenset({"redis"}), "db.operation.name": None, "error.type": None},
        DB_BUCKETS,
    ),
    # Cron jobs
    Spec(
        "cron_jobs",
        "counter",
        "{run}",
        "Job runs by outcome.",
        {"job_type": None, "status": JOB_STATUSES},
    ),
    Spec(
        "cron_job_duration", "histogram", "s", "Job run duration.", {"job_type": None}, JOB_BUCKETS
    ),
    Spec("cron_scheduled_jobs", "gauge", "{job}", "Jobs currently scheduled.", {"job_type": None}),
    Spec(
        "cron_jobs_running_over_max_runtime",
        "gauge",
        "{run}",
        "Runs still going past their max runtime (stuck).",
        {"job_type": None},
    ),
    Spec(
        "cron_job_consecutive_failures",
        "gauge",
        "{run}",
        "Failures in a row of the most-failing job of a type.",
        {"job_type": None},
    ),
    # Cron monitors (rest_service's sweeper; docs/monitors.md)
    Spec(
        "cron_monitor_status",
        "gauge",
        "{state}",
        "Monitor state: -1 paused, 0 ok, 1 late, 2 missed, 3 failing (_other: the worst).",
        {"monitor": None},
    ),
    Spec(
        "cron_monitor_last_checkin_timestamp",
        "gauge",
        "s",
        "Unix time of the monitor's last reported run (check-in or tracked run).",
        {"monitor": None},
    ),
    # History shipper
    Spec(
        "history_events",
        "counter",
        "{event}",
        "History events by outcome.",
        {
            "kind": frozenset({"job", "queue"}),
            # dead_letter: undeliverable (a required field invalid, or refused with 422),
            # set aside in the dead-letter file; sanitized: sent with a field repaired.
            "outcome": frozenset(
                {"sent", "retried", "dropped", "spooled", "dead_letter", "sanitized"}
            ),
        },
    ),
    Spec(
        "history_buffered_events",
        "gauge",
        "{event}",
        "History events waiting to be sent.",
        {"kind": frozenset({"job", "queue"})},
    ),
)
SPECS: dict[str, Spec] = {spec.name: spec for spec in CATALOG}


class AttributeFolder:
    """Applies one instrument's allowlist, folding unknown or excess values to ``_other``."""

    def __init__(self, spec: Spec, limit: int) -> None:
        self.spec = spec
        self.limit = limit
        self.seen: dict[str, set[str]] = {k: set() for k, v in spec.attributes.items() if v is None}

    def fold(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        allowed = self.spec.attributes
        out: dict[str, Any] = {}
        for key, value in attributes.items():
            if value is None or key not in allowed:
                continue
            text = value if isinstance(value, str) else _text(value)
            fixed = allowed[key]
            if fixed is not None:
                out[key] = text if text in fixed else OTHER
                continue
            seen = self.seen[key]
            if text in seen or text == OTHER:  # folding twice gives the same result
                out[key] = text
            elif len(seen) < self.limit and 0 < len(text) <= 64 and text.isprintable():
                # isprintable: no control characters or lone surrogates in a label value
                # (a surrogate cannot be encoded for /metrics or OTLP)
                seen.add(text)
                out[key] = text
            else:
                out[key] = OTHER
        if "http.response.status_code" in out:
            out["http.response.status_code"] = _status_code(attributes["http.response.status_code"])
        return out

    def forget(self) -> None:
        """Start counting distinct values again (a new configure())."""
        for seen in self.seen.values():
            seen.clear()


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a value whose __str__ fails must not fail the caller
        return OTHER


def _status_code(value: Any) -> int | str:
    """An HTTP status code as the int the semantic conventions use; anything that is not
    one (a huge int would not even fit OTLP's int64) is ``_other``."""
    try:
        code = int(value)
    except Exception:
        return OTHER
    return code if 100 <= code <= 999 else OTHER


class Instrument:
    """A catalog instrument: its allowlist folder and its pre-aggregated series
    (:mod:`otel_assist.metrics.preaggregation`)."""

    def __init__(self, spec: Spec, limit: int, aggregates: Aggregates) -> None:
        self.spec = spec
        self.folder = AttributeFolder(spec, limit)
        self._impl: Any = aggregates.add(spec.scope, _create(spec, self.folder))

    def add(self, amount: float, **attributes: Any) -> None:
        self._impl.add(amount, attributes)

    def record(self, value: float, **attributes: Any) -> None:
        self._impl.record(value, attributes)

    def set(self, value: float, **attributes: Any) -> None:
        self._impl.set(value, attributes)

    def attributes(self, **attributes: Any) -> dict[str, Any]:
        """Fold once, reuse many times (hot paths pass the result to ``raw``)."""
        return self.folder.fold(attributes)

    @property
    def raw(self) -> Any:
        """The pre-aggregating instrument: ``add(amount, attributes)``,
        ``record(value, attributes)`` or ``set(value, attributes)`` with an attribute
        mapping (folded through the allowlist the first time each mapping is seen)."""
        return self._impl


def _create(spec: Spec, folder: AttributeFolder) -> preaggregation.AnyInstrument:
    if spec.kind == "counter":
        return preaggregation.Counter(spec.name, spec.unit, spec.description, folder.fold)
    if spec.kind == "updown":
        return preaggregation.UpDownCounter(spec.name, spec.unit, spec.description, folder.fold)
    if spec.kind == "gauge":
        return preaggregation.LastValue(spec.name, spec.unit, spec.description, folder.fold)
    if spec.kind == "histogram":
        return preaggregation.ExplicitHistogram(
            spec.name, spec.unit, spec.description, folder.fold, spec.buckets
        )
    raise ValueError(f"{spec.name}: {spec.kind} instruments are created by their owner")


class Catalog:
    """All catalog instruments, aggregated in this process, built once.

    Every metric reader of a configure() receives them (:meth:`attach`); configure()
    starts them from zero (:meth:`reset`) and a forked worker does too, so the objects
    that call sites hold stay valid for the life of the process.
    """

    def __init__(self, attribute_limit: int = 100) -> None:
        self.aggregates = Aggregates()
        self.instruments = {
            spec.name: Instrument(spec, attribute_limit, self.aggregates)
            for spec in CATALOG
            if spec.kind != "observable_counter"
        }

    def __getitem__(self, name: str) -> Instrument:
        return self.instruments[name]

    def set_attribute_limit(self, limit: int) -> None:
        """Distinct values kept per open attribute (OTEL_ASSIST_METRIC_ATTRIBUTE_LIMIT)."""
        for instrument in self.instruments.values():
            instrument.folder.limit = limit

    def reset(self) -> None:
        """Every series and every remembered attribute value starts again from nothing."""
        self.aggregates.reset()
        for instrument in self.instruments.values():
            instrument.folder.forget()

    def collect(self) -> list[tuple[str, list[Metric]]]:
        """(instrumentation scope, metrics) of every series recorded since the reset."""
        return self.aggregates.collect()

    def attach(self, reader: MetricReader) -> None:
        """Make ``reader`` receive the catalog with every collection it makes."""
        attach_metric_producer(reader, self.collect)


_catalog = Catalog()


def catalog() -> Catalog:
    """The process's catalog (recording before configure() is kept until its reset)."""
    return _catalog


# ------------------------------------------------------------------ one-line helpers


class LLMCall:
    """Handle yielded by :func:`llm_call`: set token counts while the call runs."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0

    def tokens(self, input_tokens: int = 0, output_tokens: int = 0) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens


@contextmanager
def llm_call(model: str, operation: str = "chat") -> Iterator[LLMCall]:
    """Time an LLM API call; counts it, its duration, its tokens and its errors."""
    call = LLMCall()
    log = _events_logger()
    emit(log, LogEventType.LLM_CALL, "llm call", model=model, operation=operation)
    start = time.perf_counter()
    error: str | None = None
    try:
        yield call
    except BaseException as exc:
        error = type(exc).__name__
        raise
    finally:
        elapsed = time.perf_counter() - start
        emit(
            log,
            LogEventType.LLM_RESPONSE,
            "llm response",
            model=model,
            operation=operation,
            status="error" if error else "success",
            error_type=error,
            duration_ms=round(elapsed * 1000, 3),
            # Not *_tokens: keys containing "token" are masked as secrets.
            usage_input=call.input_tokens,
            usage_output=call.output_tokens,
        )
        record_llm_call(
            model,
            elapsed,
            call.input_tokens,
            call.output_tokens,
            error_type=error,
            operation=operation,
        )


def record_llm_call(
    model: str,
    duration_s: float,
    input_tokens: int = 0,
    output_tokens: int = 0,
    error_type: str | None = None,
    operation: str = "chat",
) -> None:
    cat = catalog()
    status = "error" if error_type else "success"
    cat["llm_requests"].add(1, model=model, status=status)
    cat["gen_ai.client.operation.duration"].record(
        duration_s,
        **{
            "gen_ai.request.model": model,
            "gen_ai.operation.name": operation,
            "error.type": error_type,
        },
    )
    for token_type, count in (("input", input_tokens), ("output", output_tokens)):
        if count:
            cat["gen_ai.client.token.usage"].record(
                count,
                **{
                    "gen_ai.request.model": model,
                    "gen_ai.operation.name": operation,
                    "gen_ai.token.type": token_type,
                },
            )


@contextmanager
def tool_call(tool_name: str) -> Iterator[None]:
    """Count one assistant tool call, with status error when the block raises."""
    log = _events_logger()
    emit(log, LogEventType.TOOL_CALL, "tool call", tool_name=tool_name)
    start = time.perf_counter()
    status = "success"
    error: str | None = None
    try:
        yield
    except BaseException as exc:
        status = "error"
        error = type(exc).__name__
        raise
    finally:
        emit(
            log,
            LogEventType.TOOL_RESULT,
            "tool result",
            tool_name=tool_name,
            status=status,
            error_type=error,
            duration_ms=round((time.perf_counter() - start) * 1000, 3),
        )
        catalog()["tool_calls"].add(1, tool_name=tool_name, status=status)


def count_message_processed(source: str, status: str = "success") -> None:
    catalog()["messages_processed"].add(1, source=source, status=status)


_MEMORY_EVENTS = {
    "save": (LogEventType.MEMORY_SAVE, "memory save"),
    "retrieve": (LogEventType.MEMORY_RETRIEVE, "memory retrieve"),
    "search": (LogEventType.MEMORY_RETRIEVE, "memory retrieve"),
}


def record_memory_operation(
    operation: str, status: str = "success", *, user_id: int | None = None, count: int | None = None
) -> None:
    """Count one memory operation; a save logs ``memory_save``, a retrieve or search
    ``memory_retrieve`` (``user_id``/``count`` ride on the line, never on the metric)."""
    event = _MEMORY_EVENTS.get(operation)
    if event is not None:
        fields: dict[str, Any] = {"operation": operation, "status": status}
        if user_id is not None:
            fields["user_id"] = user_id
        if count is not None:
            fields["count"] = count
        emit(_events_logger(), event[0], event[1], **fields)
    catalog()["memory_operations"].add(1, operation=operation, status=status)


_EVENTS_LOG: Any = None


def _events_logger() -> Any:
    """One lazily created structlog proxy (configure() re-points what it renders to)."""
    global _EVENTS_LOG
    if _EVENTS_LOG is None:
        import structlog

        _EVENTS_LOG = structlog.get_logger("otel_assist.events")
    return _EVENTS_LOG


@contextmanager
def rag_search() -> Iterator[None]:
    """Time one RAG search."""
    start = time.perf_counter()
    status = "success"
    try:
        yield
    except BaseException:
        status = "error"
        raise
    finally:
        catalog()["rag_search_duration"].record(time.perf_counter() - start, status=status)


def markdown_table() -> str:
    """The README's metric table, generated so it cannot drift from the catalog."""
    rows = ["| Prometheus name | type | unit | attributes | description |", "|---|---|---|---|---|"]
    for spec in CATALOG:
        attrs = ", ".join(
            f"`{k}`" + (f" ({', '.join(sorted(v))})" if v else "")
            for k, v in spec.attributes.items()
        )
        kind = {"observable_counter": "counter", "updown": "gauge"}.get(spec.kind, spec.kind)
        rows.append(
            f"| `{spec.prometheus_name}` | {kind} | `{spec.unit}` | {attrs} | {spec.description} |"
        )
    return "\n".join(rows)
