"""queue_overhead: push + pop round trip, instrumented / raw redis-py, same Redis, same run.

Ours: ``QueueProducer.push`` (envelope, baggage of a per-message correlation context,
``queue_messages_total``, a history event handed to a real ``HistoryShipper`` whose
sender thread serialises, masks and "sends" every batch - to an in-process HTTP transport
that answers 200, so rest_service's own work is not counted here) on a client timed by
``redis_metrics``; then ``QueueConsumer.get`` + ``process`` with a no-op handler (decode,
wait-time histogram, history event, baggage attached, processing histogram,
``messages_processed_total``).

Baseline: the same payload ``orjson.dumps``-ed, ``LPUSH`` + ``BRPOP`` on a plain
``redis.asyncio`` client. Both on one local redis-server started for the run (uvloop not
used by either). The machine is shared, so the run is many short pairs of rounds (order
alternating within the pair): ``ours`` and ``baseline`` are the medians of the rounds'
mean microseconds per round trip, and ``ratio`` is the median of the per-pair ratios,
which cancels load that drifts over seconds. Target: ratio <= 1.2.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis.asyncio as aredis
from opentelemetry import context

import otel_assist
from bench import BenchResult
from otel_assist import redis_metrics
from otel_assist.correlation import new_correlation_id, set_correlation_id
from otel_assist.history import HistorySettings, HistoryShipper
from otel_assist.queues import Message, QueueConsumer, QueueProducer, QueueSettings
from tests.servers import start_redis

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "40"))
PER_ROUND = int(os.environ.get("BENCH_QUEUE_MESSAGES", "300"))
PAYLOAD = {"text": "Remind me to call mom at 6pm", "chat_id": 123456789, "lang": "en"}


async def _noop(_msg: Message) -> None:
    return None


async def ours_round(producer: QueueProducer, consumer: QueueConsumer, n: int) -> float:
    contexts = [set_correlation_id(new_correlation_id(), context.Context()) for _ in range(n)]
    start = time.perf_counter()
    for ctx in contexts:
        token = context.attach(ctx)
        try:
            await producer.push(PAYLOAD, type="human", user_id=42)
        finally:
            context.detach(token)
        msg = await consumer.get(1.0)
        assert msg is not None
        await consumer.process(msg, _noop)
    return (time.perf_counter() - start) / n * 1e6


async def raw_round(client: Any, queue: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await client.lpush(queue, orjson.dumps(PAYLOAD))
        reply = await client.brpop([queue], timeout=1.0)
        assert reply is not None
    return (time.perf_counter() - start) / n * 1e6


async def main() -> BenchResult:
    otel_assist.configure(
        "bench-queue", logs_exporters=(), metrics_exporters=("prometheus",), log_level="WARNING"
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    redis = start_redis(workdir / "redis")
    sent = {"events": 0}

    def accept(request: httpx.Request) -> httpx.Response:
        sent["events"] += request.content.count(b'"event_id"')
        return httpx.Response(200, json={"received": 0, "inserted": 0, "duplicates": 0})

    shipper = HistoryShipper(
        HistorySettings(url="http://history.invalid/api/v1", flush_interval_s=0.2),
        transport=httpx.MockTransport(accept),
    )
    settings = QueueSettings(history=True)
    try:
        ours_client = redis_metrics.instrument(aredis.Redis.from_url(redis.url))
        raw_client = aredis.Redis.from_url(redis.url)
        producer = QueueProducer(ours_client, "bench_ours", source="bench", shipper=shipper,
                                 settings=settings)  # fmt: skip
        consumer = QueueConsumer(ours_client, "bench_ours", shipper=shipper, settings=settings)
        await ours_round(producer, consumer, 200)  # warm-up
        await raw_round(raw_client, "bench_raw", 200)
        ours, raw = [], []
        for i in range(ROUNDS):
            if i % 2 == 0:
                ours.append(await ours_round(producer, consumer, PER_ROUND))
                raw.append(await raw_round(raw_client, "bench_raw", PER_ROUND))
            else:
                raw.append(await raw_round(raw_client, "bench_raw", PER_ROUND))
                ours.append(await ours_round(producer, consumer, PER_ROUND))
        await asyncio.to_thread(shipper.flush, 30)
        shipper.shutdown()
        await ours_client.aclose()
        await raw_client.aclose()
    finally:
        redis.process.stop()
    ours_us, raw_us = statistics.median(ours), statistics.median(raw)
    ratio = statistics.median(o / r for o, r in zip(ours, raw, strict=True))
    expected = 2 * (ROUNDS * PER_ROUND + 200)
    print(f"queue_overhead: rounds={ROUNDS} x {PER_ROUND} round trips")
    print(f"  ours per round (us): min {min(ours):.1f}, median {ours_us:.1f}")
    print(f"  raw  per round (us): min {min(raw):.1f}, median {raw_us:.1f}")
    print(f"  ratio of medians {ours_us / raw_us:.3f}, of minima {min(ours) / min(raw):.3f}")
    print(f"  added per round trip: {ours_us - raw_us:.1f} us")
    print(f"  history events shipped: {sent['events']} of {expected}")
    return BenchResult(
        name="queue_overhead",
        ratio=ratio,
        ours=ours_us,
        baseline=raw_us,
        unit="us/round-trip",
        target="<= 1.2",
        extra={"rounds": ROUNDS, "per_round": PER_ROUND, "history_events": sent["events"]},
    )


def run() -> BenchResult:
    return asyncio.run(main())
