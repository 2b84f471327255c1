"""Every OpenTelemetry name that is not public API, in one place.

otel-assist imports underscore-named OpenTelemetry modules and classes only here; a test
(tests/core/test_otel_compat.py) fails if any other module of the library, rest_service or
the benchmarks imports one. Each group says why it is needed and which upstream change
would make it unnecessary, so that a version bump is one file to check.

Checked against: opentelemetry-api/-sdk/-exporter-otlp-proto-http 1.44.0 and 1.45.2,
opentelemetry-instrumentation/-exporter-prometheus 0.65b0 and 0.66b2 (the lower and upper
ends of the ranges in pyproject.toml; `make test` runs the core tests at the lower end).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opentelemetry._logs import LogRecord, SeverityNumber, set_logger_provider

# Why each name is here (imports below in the order the linter keeps them):
#
# - Logs signal: LogRecord, SeverityNumber, set_logger_provider, LoggerProvider,
#   LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord, LogRecordExporter,
#   LogRecordExportResult, ConsoleLogRecordExporter. The logs API and SDK still live in
#   underscore modules because upstream has not declared them stable (tracking:
#   open-telemetry/opentelemetry-python#4750 "Log stabilization current PRs overview", and
#   open-telemetry/community#1751). They are the documented way to use OpenTelemetry logs
#   in Python today.
# - Baselines the benchmarks measure ours against: encode_logs (the stock OTLP log encoder),
#   LoggingHandler and BatchLogRecordProcessor (the stock stdlib-logging bridge), and
#   OTLPLogExporter (the stock OTLP/HTTP log exporter: bench/log_overhead.py's anchors).
# - Zero-code configurator: BaseConfigurator. opentelemetry-instrument calls configure() on
#   the opentelemetry_configurator entry point, and the SDK's `_BaseConfigurator` is the only
#   base class offered for it (open-telemetry/opentelemetry-python-contrib#1956).
from opentelemetry.context import Context
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LoggingHandler,
    LogRecordProcessor,
    ReadableLogRecord,
    ReadWriteLogRecord,
)
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    ConsoleLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics.export import Metric, MetricReader, MetricsData, ScopeMetrics
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

if TYPE_CHECKING:
    # imported lazily: see __getattr__
    from opentelemetry.sdk._configuration import _BaseConfigurator as BaseConfigurator

# --- Pre-aggregated metrics handed to metric readers ---------------------------------------
# otel_assist.metrics.preaggregation aggregates the catalog in plain Python and hands finished
# public data-model objects (Metric, Sum, Histogram, ...) to each reader. The Python SDK has
# no public way yet to add a producer's metrics to a reader's collection: the
# specification's MetricProducer (open-telemetry/opentelemetry-python#4768 "Feature gap:
# MetricProducer"; open PR #5419 adds it). Until then `MetricReader._receive_metrics`, the
# abstract method every reader class implements to receive a collection, is wrapped on the
# reader instance (one protected attribute, no private import). When MetricProducer lands,
# this becomes a producer passed to the reader.

ScopedMetrics = Sequence[tuple[str, Sequence[Metric]]]


def attach_metric_producer(reader: MetricReader, produce: Callable[[], ScopedMetrics]) -> None:
    """Make ``reader`` receive ``produce()``'s metrics (by instrumentation scope name) with
    every collection, appended to the first resource's scope metrics.

    A reader calls ``_receive_metrics`` only when its MeterProvider itself has a data
    point; configure() always has one (``log_records`` reports every level, zeros too)."""
    original = reader._receive_metrics

    def receive(metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        original(_with_extra(metrics_data, produce()), timeout_millis=timeout_millis, **kwargs)

    reader._receive_metrics = receive  # type: ignore[method-assign]


def _with_extra(data: MetricsData, extra: ScopedMetrics) -> MetricsData:
    if not extra or not data.resource_metrics:
        return data
    first, *rest = data.resource_metrics
    scope_metrics = list(first.scope_metrics)
    for name, metrics in extra:
        if not metrics:
            continue
        # Into the SDK's own scope of that name if there is one (configure()'s meter is
        # "otel_assist" too): a scope appears once per resource, as the SDK emits it. With
        # the scope repeated, the SDK's log_records series went missing in Prometheus
        # behind the Collector (tests/monitoring/test_alerting_e2e.py failed).
        for i, sm in enumerate(scope_metrics):
            if sm.scope.name == name and not sm.scope.version and not sm.scope.schema_url:
                scope_metrics[i] = replace(sm, metrics=[*sm.metrics, *metrics])
                break
        else:
            scope_metrics.append(ScopeMetrics(InstrumentationScope(name), list(metrics), ""))
    return MetricsData([replace(first, scope_metrics=scope_metrics), *rest])


# --- The current context as one ContextVar -------------------------------------------------
# ``opentelemetry.context.get_current/attach/detach`` each go through two Python calls to the
# runtime context the API loaded at import (``_RUNTIME_CONTEXT``); the default one,
# ``ContextVarsRuntimeContext``, keeps the context in one ContextVar (``_current_context``).
# A queue round trip reads or swaps the context five times, so its hot path uses that
# ContextVar's own C methods. Two protected names are read, nothing is imported, and the
# variable is used only when a probe through the public API shows it is the one the API
# reads and writes; otherwise (another runtime context configured through
# OTEL_PYTHON_CONTEXT, a future layout) callers keep the public functions. Upstream has no
# public accessor for the runtime context.


def runtime_context_var() -> ContextVar[Context] | None:
    """The ContextVar behind ``opentelemetry.context.get_current()``, or None when the
    runtime context is not one (checked both ways through the public API)."""
    try:
        from opentelemetry import context as api

        var = getattr(getattr(api, "_RUNTIME_CONTEXT", None), "_current_context", None)
        if not isinstance(var, ContextVar):
            return None
        probe = Context({"otel_assist.compat.probe": True})
        token = var.set(probe)
        try:
            read_back = api.get_current() is probe
        finally:
            var.reset(token)
        public_token = api.attach(probe)
        try:
            written = var.get() is probe
        finally:
            api.detach(public_token)
        return var if read_back and written else None
    except Exception:
        return None


if TYPE_CHECKING:  # imported lazily below
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter


def __getattr__(name: str) -> Any:
    """The stock OTLP log encoder and exporter, imported on first use: they load protobuf
    and the generated OTLP modules (about 10 MiB of RSS, bench/rss.py), and only the
    benchmarks and tests that compare against them use them. Likewise ``BaseConfigurator``:
    ``opentelemetry.sdk._configuration`` imports the tracing SDK (tracing is off here), and
    only ``opentelemetry-instrument``'s configurator entry point needs it."""
    if name == "BaseConfigurator":
        from opentelemetry.sdk._configuration import _BaseConfigurator

        return _BaseConfigurator
    if name == "encode_logs":
        from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as f

        return f
    if name == "OTLPLogExporter":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as c

        return c
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BaseConfigurator",
    "BatchLogRecordProcessor",
    "ConsoleLogRecordExporter",
    "LogRecord",
    "LogRecordExportResult",
    "LogRecordExporter",
    "LogRecordProcessor",
    "LoggerProvider",
    "LoggingHandler",
    "OTLPLogExporter",
    "ReadWriteLogRecord",
    "ReadableLogRecord",
    "ScopedMetrics",
    "SeverityNumber",
    "attach_metric_producer",
    "encode_logs",
    "runtime_context_var",
    "set_logger_provider",
]
