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

from typing import TYPE_CHECKING, Any

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
# - Global meter provider proxies: ProxyMeter, ProxyMeterProvider. Meters taken from the
#   global provider before configure() (or before a fork) must follow each rebuild; the
#   API's proxies do that for the first set_meter_provider call only, and
#   otel_assist.global_providers subclasses them to re-point on every build. (Logfire's
#   public-API proxies are the model for replacing this: issue "one mechanism per problem".)
# - Zero-code configurator: BaseConfigurator. opentelemetry-instrument calls configure() on
#   the opentelemetry_configurator entry point, and the SDK's `_BaseConfigurator` is the only
#   base class offered for it (open-telemetry/opentelemetry-python-contrib#1956).
from opentelemetry._logs import LogRecord, SeverityNumber, set_logger_provider
from opentelemetry.metrics._internal import _ProxyMeter as ProxyMeter
from opentelemetry.metrics._internal import _ProxyMeterProvider as ProxyMeterProvider
from opentelemetry.sdk._configuration import _BaseConfigurator as BaseConfigurator
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

# --- Batched replay into the SDK's histogram aggregation -----------------------------------
# otel_assist.metrics.hot buffers hot-path measurements and replays them into the SDK's own
# aggregation. That needs the SDK's attribute hashing, its explicit-bucket aggregation class
# and its Measurement type. The public way (pre-aggregate and hand finished data points to a
# reader through a MetricProducer) waits for MetricProducer support in the Python SDK
# (open-telemetry/opentelemetry-python#4768). Absent in another SDK layout: None, and
# hot_metrics falls back to the public instrument API.
try:
    from opentelemetry.sdk.metrics._internal._view_instrument_match import (
        _hash_attributes as hash_attributes,
    )
    from opentelemetry.sdk.metrics._internal.aggregation import (
        _ExplicitBucketHistogramAggregation as ExplicitBucketHistogramAggregation,
    )
    from opentelemetry.sdk.metrics._internal.measurement import Measurement
except ImportError:  # pragma: no cover - a different SDK layout
    hash_attributes = None  # type: ignore[assignment]
    ExplicitBucketHistogramAggregation = None  # type: ignore[assignment,misc]
    Measurement = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:  # imported lazily below
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter


def __getattr__(name: str) -> Any:
    """The stock OTLP log encoder and exporter, imported on first use: they load protobuf
    and the generated OTLP modules (about 10 MiB of RSS, bench/rss.py), and only the
    benchmarks and tests that compare against them use them."""
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
    "ExplicitBucketHistogramAggregation",
    "LogRecord",
    "LogRecordExportResult",
    "LogRecordExporter",
    "LogRecordProcessor",
    "LoggerProvider",
    "LoggingHandler",
    "Measurement",
    "OTLPLogExporter",
    "ProxyMeter",
    "ProxyMeterProvider",
    "ReadWriteLogRecord",
    "ReadableLogRecord",
    "SeverityNumber",
    "encode_logs",
    "hash_attributes",
    "set_logger_provider",
]
