"""``configure()``: the one call that sets up logs, metrics and correlation for a service.

It installs a MeterProvider (Prometheus reader, OTLP reader when asked), a LoggerProvider
whose records leave through one bounded queue and the OTLP/HTTP exporter, the W3C baggage
propagator, and structlog. It installs **no TracerProvider**: the global tracer stays the
API's no-op, so no span is ever created or exported.

Idempotent within a process. After a fork (gunicorn/uvicorn workers started from a
preloaded app) the child rebuilds everything with a new ``service.instance.id``, so each
worker is its own Prometheus ``instance`` and counters never mix between processes.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from otel_assist import event_types, global_providers
from otel_assist._otel_compat import LoggerProvider, LogRecordExporter
from otel_assist.logs import configure as logs
from otel_assist.logs.export_queue import LevelCounts, LogQueue, RecordLimits
from otel_assist.metrics import instruments as catalog_module
from otel_assist.metrics import workers as worker_metrics
from otel_assist.settings import Settings, load_settings
from otel_assist.web import http_client

__all__ = ["Telemetry", "configure", "current_settings"]


@dataclass
class Telemetry:
    """Handle returned by configure(): flush and shut down what it installed."""

    settings: Settings
    resource: Resource
    meter_provider: MeterProvider
    logger_provider: LoggerProvider
    log_queue: LogQueue
    level_counts: LevelCounts
    otlp_metric_exporter: _SwitchableMetricExporter | None = None
    plumbing: Plumbing | None = None
    pid: int = field(default_factory=os.getpid)
    _shut_down: bool = False

    @property
    def instance_id(self) -> str:
        return str(self.resource.attributes["service.instance.id"])

    def force_flush(self, timeout_s: float = 10.0) -> bool:
        """Export pending log records and metrics now (before a planned exit, in tests)."""
        logs_ok = self.log_queue.force_flush(timeout_s)
        metrics_ok = self.meter_provider.force_flush(int(timeout_s * 1000))
        return bool(logs_ok and metrics_ok)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Flush and stop exporters. configure() after this builds a fresh set-up."""
        global _current
        if self._shut_down:
            return
        self._shut_down = True
        self.log_queue.shutdown(timeout_s)
        # The last snapshot of a worker's counts, while its Prometheus collector is still
        # registered (the provider's shutdown unregisters it).
        worker_metrics.stop()
        self.meter_provider.shutdown(int(timeout_s * 1000))
        with _lock:
            if _current is self:
                _current = None

    def abandon(self) -> None:
        """In a forked child: stop the parent's readers without exporting their state."""
        self._shut_down = True
        self.log_queue.abandon()
        if self.otlp_metric_exporter is not None:
            self.otlp_metric_exporter.enabled = False
        self.meter_provider.shutdown(1000)


class _SwitchableMetricExporter(MetricExporter):
    """Wraps the OTLP metric exporter so a forked child can silence the parent's copy."""

    def __init__(self, inner: MetricExporter) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.enabled = True

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if not self.enabled:
            return MetricExportResult.SUCCESS
        return self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


_lock = threading.RLock()
_current: Telemetry | None = None
_hooks_installed = False
_last_settings: Settings | None = None


def current() -> Telemetry | None:
    """The active configure() handle, if any."""
    return _current


def current_settings() -> Settings:
    """Settings of the active configure(), else what the environment says."""
    if _current is not None:
        return _current.settings
    return _last_settings or load_settings()


@dataclass(frozen=True)
class Plumbing:
    """Programmatic replacements for what settings would build (tests, benchmarks)."""

    log_stream: TextIO | None = None
    log_exporter: LogRecordExporter | None = None
    metric_readers: Sequence[MetricReader] = ()


def configure(
    service_name: str | None = None,
    *,
    log_stream: TextIO | None = None,
    log_exporter: LogRecordExporter | None = None,
    metric_readers: Sequence[MetricReader] = (),
    **overrides: Any,
) -> Telemetry:
    """Set up telemetry for this process and return its handle.

    ``service_name`` and ``overrides`` (any :class:`~otel_assist.settings.Settings` field)
    win over the environment. Calling it again in the same process returns the same handle.
    ``log_stream`` (default stdout), ``log_exporter`` (default from OTEL_LOGS_EXPORTER) and
    extra ``metric_readers`` exist for tests and benchmarks.
    Raises :class:`~otel_assist.settings.ConfigurationError` naming the variable at fault.
    """
    global _current, _last_settings
    with _lock:
        if _current is not None and _current.pid == os.getpid():
            return _current
        settings = load_settings()
        if service_name:
            overrides["service_name"] = service_name
        if overrides:
            settings = settings.with_overrides(overrides)
        _last_settings = settings
        event_types.LEVELS.reload(settings.log_level)  # OTEL_ASSIST_LOG_EVENTS
        _current = _build(settings, Plumbing(log_stream, log_exporter, tuple(metric_readers)))
        _install_process_hooks()
        return _current


def _build(settings: Settings, plumbing: Plumbing, *, forked: bool = False) -> Telemetry:
    resource = _resource(settings)
    counts = LevelCounts()
    exporter = plumbing.log_exporter or _log_exporter(settings)
    log_queue = LogQueue(
        exporter if not settings.sdk_disabled else None,
        resource,
        max_size=settings.log_queue_size,
        batch_size=settings.log_batch_size,
        interval_s=settings.log_export_interval_ms / 1000,
        limits=RecordLimits(
            settings.log_attribute_max_bytes,
            settings.log_attributes_max_bytes,
            settings.log_body_max_bytes,
            settings.log_attribute_count_limit,
        ),
        retry_max_backoff_s=settings.log_retry_max_backoff_ms / 1000,
    )
    readers, otlp_exporter = _metric_readers(settings)
    readers.extend(plumbing.metric_readers)
    # The catalog (HTTP, queue, Redis, job and service metrics) is aggregated in plain
    # Python and built once per process: each build starts it from zero (a forked worker
    # reports its own counts) and hands it to this build's readers. Readers pass it on
    # with the SDK's own data, which log_records (below) guarantees to be there.
    catalog = catalog_module.catalog()
    catalog.set_attribute_limit(settings.metric_attribute_limit)
    catalog.reset()
    for reader in readers:
        catalog.attach(reader)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    meter = meter_provider.get_meter("otel_assist")
    _observe_log_counts(meter, counts, log_queue)

    logger_provider = global_providers.install(meter_provider, log_queue, resource)
    _install_globals()
    logs.configure_logging(settings, log_queue, counts, plumbing.log_stream)
    if settings.access_log:
        # The access line comes from our middleware, with route and correlation_id; uvicorn's
        # own would be a second, poorer line for the same request.
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    if "prometheus" in settings.metrics_exporters and not settings.sdk_disabled:
        worker_metrics.store_for(settings.service_name, settings.metrics_dir, forked=forked)
    if settings.prometheus_port and "prometheus" in settings.metrics_exporters:
        _serve_metrics(settings)
    return Telemetry(
        settings, resource, meter_provider, logger_provider, log_queue, counts, otlp_exporter
    )


def _resource(settings: Settings) -> Resource:
    attributes: dict[str, Any] = dict(settings.resource_attributes)
    attributes.pop("deployment.environment", None)
    attributes.update(
        {
            "service.name": settings.service_name,
            "service.instance.id": str(uuid.uuid4()),
            "deployment.environment.name": settings.environment,
        }
    )
    if settings.service_version:
        attributes["service.version"] = settings.service_version
    # Resource(...) rather than Resource.create(): nothing beyond the contract becomes a
    # resource attribute (and so nothing else can turn into a Loki index label).
    return Resource(attributes)


def _log_exporter(settings: Settings) -> LogRecordExporter | None:
    if "otlp" in settings.logs_exporters:
        from otel_assist.logs.otlp_exporter import OTLPHttpLogExporter

        return OTLPHttpLogExporter(settings.logs_endpoint, settings.export_timeout_ms / 1000)
    if "console" in settings.logs_exporters:
        from otel_assist._otel_compat import ConsoleLogRecordExporter

        return ConsoleLogRecordExporter(out=sys.stderr)
    return None


def _metric_readers(
    settings: Settings,
) -> tuple[list[MetricReader], _SwitchableMetricExporter | None]:
    readers: list[MetricReader] = []
    otlp: _SwitchableMetricExporter | None = None
    if settings.sdk_disabled:
        return readers, otlp
    if "prometheus" in settings.metrics_exporters:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        readers.append(PrometheusMetricReader())
    if "otlp" in settings.metrics_exporters:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        otlp = _SwitchableMetricExporter(
            OTLPMetricExporter(
                endpoint=settings.metrics_endpoint, timeout=settings.export_timeout_ms / 1000
            )
        )
        readers.append(
            PeriodicExportingMetricReader(
                otlp,
                export_interval_millis=settings.metric_export_interval_ms,
                export_timeout_millis=settings.export_timeout_ms,
            )
        )
    if "console" in settings.metrics_exporters:
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        readers.append(
            PeriodicExportingMetricReader(
                ConsoleMetricExporter(out=sys.stderr),
                export_interval_millis=settings.metric_export_interval_ms,
            )
        )
    return readers, otlp


def _observe_log_counts(meter: Any, counts: LevelCounts, queue: LogQueue) -> None:
    def by_level(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, {"level": level}) for level, n in counts.counts.items()]

    def dropped(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, {"reason": reason}) for reason, n in queue.dropped.items()]

    for spec, callback in (
        (catalog_module.SPECS["log_records"], by_level),
        (catalog_module.SPECS["otel_assist.log_records.dropped"], dropped),
    ):
        meter.create_observable_counter(spec.name, [callback], spec.unit, spec.description)


def _install_globals() -> None:
    """The propagator and the httpx patch (providers: see :mod:`global_providers`)."""
    propagate.set_global_textmap(W3CBaggagePropagator())
    http_client.install()


def _serve_metrics(settings: Settings) -> None:
    from prometheus_client import REGISTRY, start_http_server

    store = worker_metrics.current()
    registry = worker_metrics.MergedRegistry(store) if store is not None else REGISTRY
    try:
        start_http_server(
            settings.prometheus_port,
            addr=settings.prometheus_host,
            registry=registry,
        )
    except OSError as exc:
        logs.get_logger("otel_assist").warning(
            "metrics endpoint not started", port=settings.prometheus_port, error=str(exc)
        )


def _install_process_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_shutdown_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_rebuild_after_fork)


def _shutdown_at_exit() -> None:
    if _current is not None and _current.pid == os.getpid():
        _current.shutdown(timeout_s=5.0)


def _rebuild_after_fork() -> None:
    """A forked worker gets its own instance id and fresh exporters (see module doc)."""
    global _current
    parent = _current
    if parent is None:
        return
    # Shutting the parent's provider down also unregisters its Prometheus collector.
    parent.abandon()
    _current = _build(
        parent.settings,
        Plumbing(log_stream=parent.plumbing.log_stream if parent.plumbing else None),
        forked=True,
    )
