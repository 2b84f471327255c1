"""The process-wide MeterProvider and LoggerProvider, kept valid across rebuilds.

OpenTelemetry lets a process set its global providers once. ``configure()`` builds a new
MeterProvider and log queue after a fork (each worker is its own instance) and after
``shutdown()``; if the globals kept pointing at the first build, every meter and logger
that other libraries took from them (instrumentations, ``metrics.get_meter(__name__)``)
would go on feeding a provider that is shut down, and their data would vanish in every
forked worker. So the globals installed here are indirections:

* the MeterProvider hands out meters and instruments of its own, written against the
  public API's abstract classes (``MeterProvider``, ``Meter``, ``Counter``, ...), in the
  manner of Logfire's proxies: each forwards to an instrument of the same definition on
  the current build's provider, re-created there at each build;
* the LoggerProvider is created once and its processor forwards to the current build's
  log queue (which stamps records with the current resource).

otel-assist's own catalog does not go through these (:mod:`otel_assist.metrics.preaggregation`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.context import Context
from opentelemetry.metrics import (
    CallbackT,
    Counter,
    Histogram,
    Meter,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    Synchronous,
    UpDownCounter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.util.types import Attributes

from otel_assist._otel_compat import LoggerProvider, set_logger_provider
from otel_assist.logs.export_queue import LogQueue, QueueLogProcessor

Factory = Callable[[Meter], Any]


class _Forwarding:
    """The instrument of the same definition on the current real meter (None before the
    first build: measurements are dropped, as with the API's own proxies)."""

    def __init__(self, factory: Factory) -> None:
        self._factory = factory
        self._real: Any = None

    def point_at(self, meter: Meter) -> None:
        self._real = self._factory(meter)


class FollowingCounter(_Forwarding, Counter):
    def __init__(self, factory: Factory, name: str, unit: str, description: str) -> None:
        _Forwarding.__init__(self, factory)
        Counter.__init__(self, name, unit, description)

    def add(
        self, amount: int | float, attributes: Attributes = None, context: Context | None = None
    ) -> None:
        real = self._real
        if real is not None:
            real.add(amount, attributes, context)


class FollowingUpDownCounter(_Forwarding, UpDownCounter):
    def __init__(self, factory: Factory, name: str, unit: str, description: str) -> None:
        _Forwarding.__init__(self, factory)
        UpDownCounter.__init__(self, name, unit, description)

    def add(
        self, amount: int | float, attributes: Attributes = None, context: Context | None = None
    ) -> None:
        real = self._real
        if real is not None:
            real.add(amount, attributes, context)


class FollowingHistogram(_Forwarding, Histogram):
    def __init__(self, factory: Factory, name: str, unit: str, description: str) -> None:
        _Forwarding.__init__(self, factory)
        Histogram.__init__(self, name, unit, description)

    def record(
        self, amount: int | float, attributes: Attributes = None, context: Context | None = None
    ) -> None:
        real = self._real
        if real is not None:
            real.record(amount, attributes, context)


class FollowingGauge(_Forwarding, Synchronous):
    """A synchronous gauge (``set``). The API's gauge class is still underscore-named
    (``_Gauge``), so this derives from the public ``Synchronous`` base instead."""

    def __init__(self, factory: Factory, name: str, unit: str, description: str) -> None:
        _Forwarding.__init__(self, factory)
        Synchronous.__init__(self, name, unit, description)

    def set(
        self, amount: int | float, attributes: Attributes = None, context: Context | None = None
    ) -> None:
        real = self._real
        if real is not None:
            real.set(amount, attributes, context)


class FollowingObservableCounter(_Forwarding, ObservableCounter):
    def __init__(self, factory: Factory, name: str, unit: str, description: str) -> None:
        _Forwarding.__init__(self, factory)
        ObservableCounter.__init__(self, name, None, unit, description)


class FollowingObservableUpDownCounter(_Forwarding, ObservableUpDownCounter):
    def __init__(self, factory: Factory, name: str, unit: str, description: str) -> None:
        _Forwarding.__init__(self, factory)
        ObservableUpDownCounter.__init__(self, name, None, unit, description)


class FollowingObservableGauge(_Forwarding, ObservableGauge):
    def __init__(self, factory: Factory, name: str, unit: str, description: str) -> None:
        _Forwarding.__init__(self, factory)
        ObservableGauge.__init__(self, name, None, unit, description)


class FollowingMeter(Meter):
    """A meter whose instruments follow whichever provider is current.

    Synchronous instruments are handed out once per definition (a library that creates
    its counter on every call does not grow the list); each observable instrument is kept,
    because its callbacks must be registered again with every new provider.
    """

    def __init__(self, name: str, version: str | None, schema_url: str | None) -> None:
        super().__init__(name, version=version, schema_url=schema_url)
        self._follow_lock = threading.Lock()
        self._real: Meter | None = None
        self._synchronous: dict[tuple[Any, ...], _Forwarding] = {}
        self._observable: list[_Forwarding] = []

    def point_at(self, provider: MeterProvider) -> None:
        real = provider.get_meter(self.name, self.version, self.schema_url)
        with self._follow_lock:
            self._real = real
            for instrument in (*self._synchronous.values(), *self._observable):
                instrument.point_at(real)

    def _synchronous_instrument(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        with self._follow_lock:
            instrument = self._synchronous.get(key)
            if instrument is None:
                instrument = self._synchronous[key] = make()
                if self._real is not None:
                    instrument.point_at(self._real)
            return instrument

    def _observable_instrument(self, instrument: _Forwarding) -> Any:
        with self._follow_lock:
            self._observable.append(instrument)
            if self._real is not None:
                instrument.point_at(self._real)
        return instrument

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Counter:
        def make() -> FollowingCounter:
            return FollowingCounter(
                lambda m: m.create_counter(name, unit, description), name, unit, description
            )

        result: Counter = self._synchronous_instrument(("counter", name, unit, description), make)
        return result

    def create_up_down_counter(
        self, name: str, unit: str = "", description: str = ""
    ) -> UpDownCounter:
        def make() -> FollowingUpDownCounter:
            return FollowingUpDownCounter(
                lambda m: m.create_up_down_counter(name, unit, description),
                name,
                unit,
                description,
            )

        result: UpDownCounter = self._synchronous_instrument(
            ("updown", name, unit, description), make
        )
        return result

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
    ) -> Histogram:
        advisory = (
            tuple(explicit_bucket_boundaries_advisory)
            if explicit_bucket_boundaries_advisory is not None
            else None
        )

        def make() -> FollowingHistogram:
            return FollowingHistogram(
                lambda m: m.create_histogram(
                    name,
                    unit,
                    description,
                    explicit_bucket_boundaries_advisory=list(advisory) if advisory else None,
                ),
                name,
                unit,
                description,
            )

        result: Histogram = self._synchronous_instrument(
            ("histogram", name, unit, description, advisory), make
        )
        return result

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> Any:
        def make() -> FollowingGauge:
            return FollowingGauge(
                lambda m: m.create_gauge(name, unit, description), name, unit, description
            )

        return self._synchronous_instrument(("gauge", name, unit, description), make)

    def create_observable_counter(
        self,
        name: str,
        callbacks: Sequence[CallbackT] | None = None,
        unit: str = "",
        description: str = "",
    ) -> ObservableCounter:
        result: ObservableCounter = self._observable_instrument(
            FollowingObservableCounter(
                lambda m: m.create_observable_counter(name, callbacks, unit, description),
                name,
                unit,
                description,
            )
        )
        return result

    def create_observable_up_down_counter(
        self,
        name: str,
        callbacks: Sequence[CallbackT] | None = None,
        unit: str = "",
        description: str = "",
    ) -> ObservableUpDownCounter:
        result: ObservableUpDownCounter = self._observable_instrument(
            FollowingObservableUpDownCounter(
                lambda m: m.create_observable_up_down_counter(name, callbacks, unit, description),
                name,
                unit,
                description,
            )
        )
        return result

    def create_observable_gauge(
        self,
        name: str,
        callbacks: Sequence[CallbackT] | None = None,
        unit: str = "",
        description: str = "",
    ) -> ObservableGauge:
        result: ObservableGauge = self._observable_instrument(
            FollowingObservableGauge(
                lambda m: m.create_observable_gauge(name, callbacks, unit, description),
                name,
                unit,
                description,
            )
        )
        return result


class FollowingMeterProvider(MeterProvider):
    """The global MeterProvider: one following meter per (name, version, schema_url), each
    re-pointed at every build's provider (:func:`install`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._meters: dict[tuple[str, str | None, str | None], FollowingMeter] = {}
        self._real: MeterProvider | None = None

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> Meter:
        key = (name, version, schema_url)
        with self._lock:
            meter = self._meters.get(key)
            if meter is None:
                meter = self._meters[key] = FollowingMeter(name, version, schema_url)
                if self._real is not None:
                    meter.point_at(self._real)
            return meter

    def point_at(self, provider: MeterProvider) -> None:
        """Re-point every meter (and so every instrument) handed out at ``provider``."""
        with self._lock:
            self._real = provider
            for meter in self._meters.values():
                meter.point_at(provider)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        real: Any = self._real
        return bool(real.force_flush(timeout_millis)) if real is not None else True


_lock = threading.Lock()
_meters: FollowingMeterProvider | None = None
_log_processor: QueueLogProcessor | None = None
_logger_provider: LoggerProvider | None = None


def install(
    meter_provider: MeterProvider, log_queue: LogQueue, resource: Resource
) -> LoggerProvider:
    """Point the global providers at this build (installing them on first use) and return
    the LoggerProvider. If another library set the globals first, OpenTelemetry keeps
    theirs (and warns); ours then serve only otel_assist's own instruments."""
    global _meters, _log_processor, _logger_provider
    with _lock:
        if _meters is None or _log_processor is None or _logger_provider is None:
            _meters = FollowingMeterProvider()
            otel_metrics.set_meter_provider(_meters)
            _log_processor = QueueLogProcessor(log_queue)
            _logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
            _logger_provider.add_log_record_processor(_log_processor)
            set_logger_provider(_logger_provider)
        _log_processor.queue = log_queue
        meters, provider = _meters, _logger_provider
    meters.point_at(meter_provider)
    return provider
