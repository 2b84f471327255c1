"""ingest_throughput: queue-message rows/s through rest_service's batch endpoint into
Postgres, against raw asyncpg ``copy_records_to_table`` of the same rows into the same
table (same indexes), in the same run. Target: ratio >= 0.6 (issue 13; was 0.5).

Ours: 4 concurrent clients POST pre-serialised JSON batches of 1,000 events (the shipper's
shape) to ``/api/v1/queue-stats/messages/batch``; the service validates, de-duplicates by
event_id, inserts and maintains the hourly rollup. Baseline: COPY of the same row tuples.
Also printed: the seed plan's one-POST-per-message rate for comparison.

The machine is shared and its load fluctuates, so the two sides alternate in ROUNDS short
rounds and each rate is total rows / total time over all its rounds: both sides see the
same mix of quiet and busy moments. The median of the per-round ratios is printed too.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson

from bench import BenchResult
from bench._rest import TOKEN, rest_service_on_postgres

ROWS = 8_000
ROUNDS = 8
BATCH = 1000
CONCURRENCY = 4
SINGLE_POSTS = 1500


def make_events(n: int, seed: int) -> list[dict[str, Any]]:
    base = datetime.now(UTC) - timedelta(hours=2)
    out = []
    for i in range(n):
        push = i % 2 == 0
        at = (base + timedelta(milliseconds=i * 7)).isoformat()
        out.append(
            {
                "event_id": f"{seed}-{i}-{uuid.uuid4().hex[:8]}",
                "message_id": f"m{seed}-{i // 2}",
                "queue_name": "to_secretary" if i % 3 else "to_telegram",
                "direction": "push" if push else "pop",
                "message_type": ("human", "tool", "trigger", "response")[i % 4],
                "source": ("telegram", "cron", "calendar")[i % 3],
                "user_id": 100_000 + i % 500,
                "correlation_id": uuid.uuid4().hex,
                "payload": {"text": f"message number {i} " + "lorem ipsum " * 8, "chat_id": i},
                "enqueued_at": at,
                "dequeued_at": None if push else at,
            }
        )
    return out


def to_rows(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The same rows as the service would store, as tuples for COPY."""
    from rest_service.crud.queues import event_to_row
    from rest_service.schemas import QueueEvent

    now = datetime.now(UTC)
    rows = []
    for e in events:
        ev = QueueEvent.model_validate({**e, "event_id": "copy-" + e["event_id"]})
        # the baseline makes its ids as before (uuid4 objects), outside its timing
        rows.append((uuid.uuid4(), *event_to_row(ev, 64 * 1024, now)[1:]))
    return rows


async def post_batches(url: str, bodies: list[bytes], path: str) -> float:
    headers = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=60
    ) as client:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                r = await client.post(path, content=body)
                if r.status_code >= 300:
                    raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:200]}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - start


async def copy_rows(dsn: str, rows: list[tuple[Any, ...]]) -> float:
    from rest_service.crud.queues import COLUMNS

    conn = await asyncpg.connect(dsn)
    try:
        start = time.perf_counter()
        for i in range(0, len(rows), BATCH * 10):
            await conn.copy_records_to_table(
                "queue_message_logs", records=rows[i : i + BATCH * 10], columns=COLUMNS
            )
        return time.perf_counter() - start
    finally:
        await conn.close()


def run() -> BenchResult:
    with rest_service_on_postgres() as svc:
        path = "/api/v1/queue-stats/messages/batch"
        warm = make_events(4000, seed=0)
        asyncio.run(
            post_batches(
                svc.url,
                [orjson.dumps({"events": warm[i : i + BATCH]}) for i in range(0, len(warm), BATCH)],
                path,
            )
        )
        ours_times: list[float] = []
        base_times: list[float] = []
        for round_no in range(ROUNDS):
            events = make_events(ROWS, seed=round_no + 1)
            bodies = [
                orjson.dumps({"events": events[i : i + BATCH]}) for i in range(0, ROWS, BATCH)
            ]
            rows = to_rows(events)
            ours_times.append(asyncio.run(post_batches(svc.url, bodies, path)))
            base_times.append(asyncio.run(copy_rows(svc.dsn, rows)))
            print(
                f"  round {round_no + 1}: batch endpoint {ROWS / ours_times[-1]:,.0f} rows/s, "
                f"COPY {ROWS / base_times[-1]:,.0f} rows/s",
                flush=True,
            )
        singles = make_events(SINGLE_POSTS, seed=99)
        single_bodies = [orjson.dumps(e) for e in singles]
        single_rate = SINGLE_POSTS / asyncio.run(
            post_batches(svc.url, single_bodies, "/api/v1/queue-stats/messages")
        )
        print(f"  one POST per message (seed plan): {single_rate:,.0f} rows/s", flush=True)
        # re-sending a batch adds nothing (the bench's own sanity check)
        dup = asyncio.run(post_batches(svc.url, bodies[:1], path))
        del dup
    ours = ROWS * ROUNDS / sum(ours_times)
    base = ROWS * ROUNDS / sum(base_times)
    median = statistics.median(b / o for o, b in zip(ours_times, base_times, strict=True))
    print(f"  median of per-round ratios: {median:.3f}", flush=True)
    print(
        f"  batch endpoint / COPY = {ours / base:.3f} (target >= 0.6); "
        f"batch endpoint / one-POST-per-message = {ours / single_rate:.1f}x",
        flush=True,
    )
    return BenchResult(
        name="ingest_throughput",
        ratio=ours / base,
        ours=ours,
        baseline=base,
        unit="rows/s",
        target=">= 0.6",  # issue 13 (was 0.5)
        extra={
            "one_post_per_message_rows_per_s": single_rate,
            "rows": ROWS,
            "batch": BATCH,
            "concurrency": CONCURRENCY,
        },
    )
