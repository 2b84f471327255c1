"""The process-wide MeterProvider and LoggerProvider, kept valid across rebuilds.

OpenTelemetry lets a process set its global providers once. ``configure()`` builds a new
MeterProvider and log queue after a fork (each worker is its own instance) and after
``shutdown()``; if the globals kept pointing at the first build, every meter and logger
that other libraries took from them (instrumentations, ``metrics.get_meter(__name__)``)
would go on feeding a provider that is shut down, and their data would vanish in every
forked worker. So the globals installed here are indirections:

* the MeterProvider hands out proxy meters and proxy instruments (the API's own, which it
  uses before any provider is set) and re-points them at each new build's provider;
* the LoggerProvider is created once and its processor forwards to the current build's
  log queue (which stamps records with the current resource).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import Meter, MeterProvider
from opentelemetry.sdk.resources import Resource

from otel_assist._otel_compat import LoggerProvider, set_logger_provider
from otel_assist._otel_compat import ProxyMeter as _ProxyMeter
from otel_assist._otel_compat import ProxyMeterProvider as _ProxyMeterProvider
from otel_assist.logs.export_queue import LogQueue, QueueLogProcessor


class FollowingMeter(_ProxyMeter):
    """The API's proxy meter, except that its instruments stay proxies after a provider is
    set, so a later rebuild can re-point them.

    ``_ProxyMeter`` hands out the real meter's instruments once it has one; here
    ``_real_meter`` always reads as unset to its ``create_*`` methods (the real meter is
    kept in ``_current``) and each new proxy instrument is pointed at the current real
    meter right away.
    """

    _current: Meter | None = None

    @property
    def _real_meter(self) -> None:
        return None

    @_real_meter.setter
    def _real_meter(self, meter: Meter | None) -> None:
        self._current = meter


def _following(name: str) -> Callable[..., Any]:
    create = getattr(_ProxyMeter, name)

    def following_create(self: FollowingMeter, *args: Any, **kwargs: Any) -> Any:
        proxy = create(self, *args, **kwargs)
        real = self._current
        if real is not None:
            proxy.on_meter_set(real)
        return proxy

    following_create.__name__ = name
    following_create.__doc__ = create.__doc__
    return following_create


for _name in (
    "create_counter",
    "create_up_down_counter",
    "create_observable_counter",
    "create_histogram",
    "create_gauge",
    "create_observable_gauge",
    "create_observable_up_down_counter",
):
    setattr(FollowingMeter, _name, _following(_name))


class FollowingMeterProvider(_ProxyMeterProvider):
    """A global MeterProvider whose meters follow whichever provider is current.

    Unlike the API's proxy (which returns the real provider's meters once one is set, and
    so cannot move them later), every meter handed out stays a proxy; one proxy per
    (name, version, schema_url), so code that asks for its meter on every call does not
    grow the list.
    """

    def __init__(self) -> None:
        super().__init__()
        self._by_key: dict[tuple[str, str | None, str | None], FollowingMeter] = {}

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> Meter:
        key = (name, version, schema_url)
        with self._lock:
            meter = self._by_key.get(key)
            if meter is not None:
                return meter
            meter = FollowingMeter(name, version=version, schema_url=schema_url)
            self._by_key[key] = meter
            self._meters.append(meter)
            real = self._real_meter_provider
        if real is not None:
            meter.on_set_meter_provider(real)
        return meter

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        real: Any = self._real_meter_provider
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
    meters.on_set_meter_provider(meter_provider)
    return provider
