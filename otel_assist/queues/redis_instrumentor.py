"""Zero-code Redis metrics: the ``opentelemetry_instrumentor`` entry point ``otel_assist_redis``.

Under ``opentelemetry-instrument`` every redis-py client (``redis.Redis`` and
``redis.asyncio.Redis``, their pipelines included) created after start-up records
``db.client.operation.duration`` through :func:`otel_assist.metrics.redis.instrument`: the
same lean wrapper that ``redis_client.connect()`` applies, so a foreign app gets the metric
without building its clients through otel-assist.

The stock ``opentelemetry-instrumentation-redis`` (the one the project card names; installed
with the ``queues`` extra) is *not* loaded by our distro (``otel_assist.distro.REPLACED``):
with tracing off it would start a non-recording span around every command and record no
metric. So there is one wrapper per client, never two, and no span on the hot path.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from otel_assist import distro
from otel_assist.metrics import redis as redis_metrics


class RedisMetricsInstrumentor(BaseInstrumentor):
    """Instrument every redis-py client created from now on (sync and asyncio)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("redis >= 4.0",)

    def _instrument(self, **kwargs: Any) -> None:
        if distro.explicit_choice() is not None:
            # The operator named another distro: otel-assist stays out of the way.
            return
        redis_metrics.instrument_classes()

    def _uninstrument(self, **kwargs: Any) -> None:
        redis_metrics.uninstrument_classes()
