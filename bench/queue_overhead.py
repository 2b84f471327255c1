"""queue_overhead: push + pop round trip, instrumented / raw redis-py, same Redis, same run.

Ours: ``QueueProducer.push`` (envelope, baggage of a per-message correlation context,
``queue_messages_total``, a history event handed to the shipper) on a client timed by
``redis_metrics``; then ``QueueConsumer.get`` + ``process`` with a no-op handler (decode,
wait-time histogram, history event, baggage attached, processing histogram,
``messages_processed_total``). Every measurement is pre-aggregated on the spot
(``otel_assist.metrics.preaggregation``), inside the measured time.

The contract figure counts the shipper *enqueue*, as the issue specifies: the shipper's
sender thread is off and its buffer is emptied between rounds, off the clock. A second
variant, ``ours+sender``, runs the real sender thread as well (serialising, masking and
"sending" every batch to an in-process transport answering 200, so rest_service's own
work is not counted); it is printed as an extra figure. After each of its rounds the live
shipper is flushed off the clock, so its thread's leftover work does not land inside the
next round.

Baseline: the same payload ``orjson.dumps``-ed, ``LPUSH`` + ``BRPOP`` + ``orjson.loads``
on a plain ``redis.asyncio`` client. Both on one local redis-server started for the run
(uvloop not used by either). The machine is shared, so the run is many short pairs of
rounds (order alternating within the pair): ``ours`` and ``baseline`` are the medians of
the rounds' mean microseconds per round trip, and ``ratio`` is the median of the per-pair
ratios, which cancels load that drifts over seconds. Target: ratio <= 1.15.

Two phases, each its own pairs: ours against raw (the contract), then ours+sender against
raw. Until 2026-12-06 the three ran interleaved as (ours, raw, sender), (sender, raw,
ours), ...: raw ran right after a sender round in every other pair and ours never did.
That order favoured raw: in four back-to-back pairs of runs of the same code the
interleaved contract ratio was 1.147, 1.140, 1.126, 1.147 and the phased one 1.115,
1.125, 1.115, 1.130 (bench/README.md). Why a round after a two-thread round runs faster
was not isolated; the likeliest reason is a CPU that had no chance to go idle.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis.asyncio as aredis
from opentelemetry import context

import otel_assist
from bench import BenchResult
from otel_assist.correlation import context_with_correlation_id, new_correlation_id
from otel_assist.history.shipper import HistorySettings, HistoryShipper
from otel_assist.metrics import redis as redis_metrics
from otel_assist.queues import Message, QueueConsumer, QueueProducer, QueueSettings
from tests.servers import start_redis

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "40"))
PER_ROUND = int(os.environ.get("BENCH_QUEUE_MESSAGES", "300"))
PAYLOAD = {"text": "Remind me to call mom at 6pm", "chat_id": 123456789, "lang": "en"}


async def _noop(_msg: Message) -> None:
    return None


async def ours_round(producer: QueueProducer, consumer: QueueConsumer, n: int) -> float:
    contexts = [
        context_with_correlation_id(new_correlation_id(), context.Context()) for _ in range(n)
    ]
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
        assert orjson.loads(reply[1])
    return (time.perf_counter() - start) / n * 1e6


async def interleaved(
    a: Callable[[], Awaitable[float]], b: Callable[[], Awaitable[float]]
) -> tuple[list[float], list[float]]:
    """ROUNDS pairs of rounds of ``a`` and ``b``, the order alternating within the pair
    (ab, ba, ab, ...), so each runs as often right after the other as right after itself."""
    ra: list[float] = []
    rb: list[float] = []
    for i in range(ROUNDS):
        if i % 2 == 0:
            ra.append(await a())
            rb.append(await b())
        else:
            rb.append(await b())
            ra.append(await a())
    return ra, rb


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

    live = HistoryShipper(
        HistorySettings(url="http://history.invalid/api/v1", flush_interval_s=0.2),
        transport=httpx.MockTransport(accept),
    )
    enqueue_only = HistoryShipper(
        HistorySettings(url="http://history.invalid/api/v1", buffer_size=10**7), start=False
    )
    settings = QueueSettings(history=True)
    try:
        client = redis_metrics.instrument(aredis.Redis.from_url(redis.url))
        raw_client = aredis.Redis.from_url(redis.url)
        pairs = {
            name: (
                QueueProducer(client, f"bench_{name}", source="bench", shipper=shipper,
                              settings=settings),
                QueueConsumer(client, f"bench_{name}", shipper=shipper, settings=settings),
            )
            for name, shipper in (("ours", enqueue_only), ("sender", live))
        }  # fmt: skip
        for producer, consumer in pairs.values():
            await ours_round(producer, consumer, 200)  # warm-up
        await raw_round(raw_client, "bench_raw", 200)
        enqueue_only.clear()

        # Phase 1, the contract: ours (enqueue-only shipper) against raw.
        async def ours_then_clear() -> float:
            result = await ours_round(*pairs["ours"], PER_ROUND)
            enqueued = enqueue_only.clear()  # off the clock
            assert enqueued == 2 * PER_ROUND
            return result

        ours, raw = await interleaved(
            ours_then_clear, lambda: raw_round(raw_client, "bench_raw", PER_ROUND)
        )

        # Phase 2, the extra figure: ours with the live sender thread, against raw again.
        async def sender_then_flush() -> float:
            result = await ours_round(*pairs["sender"], PER_ROUND)
            # Off the clock: the live sender finishes this round's events now, so its
            # thread's work is not timed inside the next raw round.
            await asyncio.to_thread(live.flush, 30)
            return result

        sender, sender_raw = await interleaved(
            sender_then_flush, lambda: raw_round(raw_client, "bench_raw", PER_ROUND)
        )
        await asyncio.to_thread(live.flush, 30)
        live.shutdown()
        await client.aclose()
        await raw_client.aclose()
    finally:
        redis.process.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    ours_us, raw_us = statistics.median(ours), statistics.median(raw)
    ratio = statistics.median(o / r for o, r in zip(ours, raw, strict=True))
    expected = 2 * (ROUNDS * PER_ROUND + 200)
    sender_us = statistics.median(sender)
    sender_ratio = statistics.median(o / r for o, r in zip(sender, sender_raw, strict=True))
    load = os.getloadavg()[0]
    print(f"queue_overhead: rounds={ROUNDS} x {PER_ROUND} round trips")
    print(f"  ours per round (us): min {min(ours):.1f}, median {ours_us:.1f}")
    print(f"  raw  per round (us): min {min(raw):.1f}, median {raw_us:.1f}")
    print(f"  ratio of medians {ours_us / raw_us:.3f}, of minima {min(ours) / min(raw):.3f}")
    print(f"  added per round trip: {ours_us - raw_us:.1f} us")
    print(
        f"  ours+sender (live shipper thread): median {sender_us:.1f} us, ratio {sender_ratio:.3f}"
    )
    print(f"  history events shipped by the live sender: {sent['events']} of {expected}")
    print(f"  load average at the end: {load:.1f} on {os.cpu_count()} CPUs")
    return BenchResult(
        name="queue_overhead",
        ratio=ratio,
        ours=ours_us,
        baseline=raw_us,
        unit="us/round-trip",
        target="<= 1.15",  # issue 13 (was 1.2)
        extra={
            "rounds": ROUNDS,
            "per_round": PER_ROUND,
            "with_sender_us": sender_us,
            "with_sender_ratio": sender_ratio,
            "history_events": sent["events"],
            "load_average": load,
        },
    )


def run() -> BenchResult:
    return asyncio.run(main())
