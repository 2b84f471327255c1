"""queue_floor: where queue_overhead's cost sits, by taking the instrumentation apart.

queue_overhead compares the whole instrumented round trip with raw redis-py. This
ablation runs, interleaved in the same process and on the same Redis, the same round trip
(``bench.queue_overhead.ours_round``) with parts of the bookkeeping switched off, to show
how much of the ratio is the message handling every instrumented message needs (the
envelope encoded and validated, the correlation context built and attached, the
``Message``) and how much each kind of bookkeeping adds:

* ``skeleton``: envelope, correlation context, Message; no metrics (the queue's
  instruments replaced by no-op handles), no history, a plain client;
* ``+metrics``: the queue's own metrics (push/pop counts, wait and processing
  histograms, processed count);
* ``+history``: and the history events handed to the shipper (enqueue only, as in
  queue_overhead);
* ``full``: and ``db.client.operation.duration`` on the client: queue_overhead's ours.

The contract line's ratio is ``skeleton`` / raw (informational, no target): the part of
queue_overhead no bookkeeping change can remove. Each variant's median per-pair ratio is
printed and kept in the extra figures.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import redis.asyncio as aredis

import otel_assist
from bench import BenchResult
from bench.queue_overhead import ours_round, raw_round
from otel_assist.history.shipper import HistorySettings, HistoryShipper
from otel_assist.metrics import redis as redis_metrics
from otel_assist.queues import QueueConsumer, QueueProducer, QueueSettings
from tests.servers import start_redis

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "30"))
PER_ROUND = int(os.environ.get("BENCH_QUEUE_MESSAGES", "300"))


class _Off:
    """A metric handle that records nothing (the ablation's "no metrics")."""

    def add(self, amount: float = 1) -> None:
        return None

    def record(self, value: float) -> None:
        return None


class _NoMetrics:
    """Stands where a producer's or consumer's ``_m`` (its queue's bound instruments) is."""

    def __init__(self) -> None:
        off = _Off()
        self.pushed = self.popped = self.wait = off
        self.processing = {"success": off, "error": off}
        self._off = off

    def processed(self, source: str, status: str) -> _Off:
        return self._off


async def main() -> BenchResult:
    otel_assist.configure(
        "bench-queue", logs_exporters=(), metrics_exporters=("prometheus",), log_level="WARNING"
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-queue-floor-"))
    redis = start_redis(workdir / "redis")
    shipper = HistoryShipper(
        HistorySettings(url="http://history.invalid/api/v1", buffer_size=10**7), start=False
    )
    try:
        timed = redis_metrics.instrument(aredis.Redis.from_url(redis.url))
        plain = aredis.Redis.from_url(redis.url)
        raw_client = aredis.Redis.from_url(redis.url)

        def pair(client: Any, name: str, history: bool, metrics: bool) -> tuple[Any, Any]:
            settings = QueueSettings(history=history)
            ship = shipper if history else None
            producer = QueueProducer(client, f"floor_{name}", source="bench", shipper=ship,
                                     settings=settings)  # fmt: skip
            consumer = QueueConsumer(client, f"floor_{name}", shipper=ship, settings=settings)
            if not metrics:
                producer._m = consumer._m = _NoMetrics()  # type: ignore[assignment]
            return producer, consumer

        variants = {
            "skeleton": pair(plain, "skeleton", history=False, metrics=False),
            "+metrics": pair(plain, "metrics", history=False, metrics=True),
            "+history": pair(plain, "history", history=True, metrics=True),
            "full": pair(timed, "full", history=True, metrics=True),
        }
        for producer, consumer in variants.values():
            await ours_round(producer, consumer, 200)  # warm-up
        await raw_round(raw_client, "floor_raw", 200)
        shipper.clear()
        times: dict[str, list[float]] = {name: [] for name in ("raw", *variants)}
        for i in range(ROUNDS):
            order = list(times) if i % 2 == 0 else list(reversed(times))
            for name in order:
                if name == "raw":
                    times[name].append(await raw_round(raw_client, "floor_raw", PER_ROUND))
                else:
                    times[name].append(await ours_round(*variants[name], PER_ROUND))
            shipper.clear()
        for client in (timed, plain, raw_client):
            await client.aclose()
    finally:
        redis.process.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    raw = times["raw"]
    ratios = {
        name: statistics.median(o / r for o, r in zip(times[name], raw, strict=True))
        for name in variants
    }
    print(f"queue_floor: rounds={ROUNDS} x {PER_ROUND} round trips, median per-pair ratios")
    print(f"  raw       {statistics.median(raw):8.1f} us")
    for name in variants:
        print(f"  {name:9s} {statistics.median(times[name]):8.1f} us  ratio {ratios[name]:.3f}")
    print(f"  load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return BenchResult(
        name="queue_floor",
        ratio=ratios["skeleton"],
        ours=statistics.median(times["skeleton"]),
        baseline=statistics.median(raw),
        unit="us/round-trip",
        target="",  # informational: the ablation of queue_overhead
        extra={f"{name}_ratio": ratios[name] for name in variants},
    )


def run() -> BenchResult:
    return asyncio.run(main())
