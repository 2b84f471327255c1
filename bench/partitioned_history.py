"""partitioned_history: the day-partitioned history tables (migration 0002) at scale.

On a fresh Postgres, migrated (so job_executions and queue_message_logs are partitioned by
day), with the partitions of the last 9 days made ahead as the maintenance task would:

1. stats: p95 of the queue-stats and job-stats endpoints with ROWS rows per table against
   10,000 rows per table (the stats_scaling contract, target <= 2.0), rows spread over 7 days
   in time order (bench/stats_scaling.py's loader);
2. ingest at ROWS rows per table: the batch endpoint against raw COPY of the same rows
   into the same partitioned table (the ingest_throughput contract, target >= 0.5);
3. retention of one day: rest_service.retention.purge dropping the oldest day's partitions
   (target < 1 s), against a plain ``DELETE`` of the next day's rows from queue_message_logs
   (what retention costs without partitions), printed in seconds.

ROWS defaults to 5,000,000 (the issue's figure); ``BENCH_PARTITION_ROWS`` lowers it where
loading that many takes too long, and the row count used is printed.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson

from bench import BenchResult
from bench._rest import rest_service_on_postgres
from bench.ingest_throughput import BATCH, copy_rows, make_events, post_batches, to_rows
from bench.stats_scaling import ENDPOINTS, fill, p95s, rebuild_rollups

ROWS = int(os.environ.get("BENCH_PARTITION_ROWS", "5000000"))
SMALL = 10_000
INGEST_ROWS = 8_000
INGEST_ROUNDS = 4


async def make_partitions(database_url: str) -> None:
    """Partitions for the last 9 days and the next 3 (the loader spreads rows over 7 days;
    the maintenance task keeps them ahead in production)."""
    from rest_service import partitions
    from rest_service.core.config import Settings
    from rest_service.core.db import Database

    db = Database(Settings(database_url=database_url))
    today = datetime.now(UTC).date()
    try:
        async with db.engine.begin() as conn:
            for table in partitions.TABLES:
                days = [today + timedelta(days=d) for d in range(-9, partitions.AHEAD_DAYS + 1)]
                await conn.run_sync(partitions.ensure_partitions, table, days)
    finally:
        await db.dispose()


async def layout(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        parts = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'queue_message_logs'::regclass"
        )
        default = await conn.fetchval("SELECT count(*) FROM queue_message_logs_default")
        return f"{parts} partitions per table, {default} rows in DEFAULT"
    finally:
        await conn.close()


async def retention_one_day(database_url: str, dsn: str) -> tuple[float, int, float, int]:
    """(seconds to drop the oldest day, rows it held, seconds to DELETE the next day's rows
    from queue_message_logs, rows deleted)."""
    from rest_service.core.config import Settings
    from rest_service.core.db import Database
    from rest_service.retention import purge

    conn = await asyncpg.connect(dsn)
    try:
        oldest = await conn.fetchval("SELECT min(created_at) FROM queue_message_logs")
        day0 = oldest.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        day1 = day0 + timedelta(days=1)
        day2 = day1 + timedelta(days=1)
        held = await conn.fetchval(
            "SELECT (SELECT count(*) FROM queue_message_logs WHERE created_at < $1)"
            " + (SELECT count(*) FROM job_executions WHERE created_at < $1)",
            day1,
        )
        settings = Settings(database_url=database_url, retention_days=7)
        db = Database(settings)
        try:
            # "now" such that the cutoff falls exactly at the end of the oldest day
            start = time.perf_counter()
            await purge(db, settings, day1 + timedelta(days=7))
            drop_s = time.perf_counter() - start
        finally:
            await db.dispose()
        left = await conn.fetchval(
            "SELECT count(*) FROM queue_message_logs WHERE created_at < $1", day1
        )
        assert left == 0, left
        start = time.perf_counter()
        status = await conn.execute(
            "DELETE FROM queue_message_logs WHERE created_at >= $1 AND created_at < $2", day1, day2
        )
        delete_s = time.perf_counter() - start
        return drop_s, int(held), delete_s, int(status.split()[-1])
    finally:
        await conn.close()


def ingest_ratio(url: str, dsn: str) -> tuple[float, float]:
    path = "/api/v1/queue-stats/messages/batch"
    ours_t = base_t = 0.0
    for round_no in range(INGEST_ROUNDS):
        events = make_events(INGEST_ROWS, seed=1000 + round_no)
        bodies = [
            orjson.dumps({"events": events[i : i + BATCH]}) for i in range(0, INGEST_ROWS, BATCH)
        ]
        ours_t += asyncio.run(post_batches(url, bodies, path))
        base_t += asyncio.run(copy_rows(dsn, to_rows(events)))
    total = INGEST_ROWS * INGEST_ROUNDS
    return total / ours_t, total / base_t


def run() -> BenchResult:
    with rest_service_on_postgres() as svc:
        asyncio.run(make_partitions(svc.database_url))
        asyncio.run(fill(svc.dsn, SMALL))
        asyncio.run(rebuild_rollups(svc.database_url))
        small = asyncio.run(p95s(svc.url))
        print(
            f"  {SMALL:,} rows/table: "
            + ", ".join(f"{k} p95 {v:.2f} ms" for k, v in small.items()),
            flush=True,
        )
        t0 = time.perf_counter()
        asyncio.run(fill(svc.dsn, ROWS))
        asyncio.run(rebuild_rollups(svc.database_url))
        load_s = time.perf_counter() - t0
        print(
            f"  loaded {ROWS:,} rows/table in {load_s:.0f} s; {asyncio.run(layout(svc.dsn))}",
            flush=True,
        )
        large = asyncio.run(p95s(svc.url))
        print(
            f"  {ROWS:,} rows/table: " + ", ".join(f"{k} p95 {v:.2f} ms" for k, v in large.items()),
            flush=True,
        )
        ours, base = ingest_ratio(svc.url, svc.dsn)
        print(
            f"  ingest at {ROWS:,} rows/table: batch endpoint {ours:,.0f} rows/s, COPY "
            f"{base:,.0f} rows/s, ratio {ours / base:.3f} (target >= 0.5)",
            flush=True,
        )
        drop_s, held, delete_s, deleted = asyncio.run(retention_one_day(svc.database_url, svc.dsn))
        print(
            f"  retention of one day: {drop_s:.3f} s to drop the partitions holding {held:,} "
            f"rows (target < 1 s); row-by-row DELETE of the next day's {deleted:,} queue rows: "
            f"{delete_s:.2f} s",
            flush=True,
        )
    ratios = {k: large[k] / small[k] for k in ENDPOINTS}
    worst = max(ratios, key=lambda k: ratios[k])
    print(
        f"  stats ratios ({ROWS:,} / {SMALL:,}): "
        + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())
        + " (target <= 2.0)",
        flush=True,
    )
    return BenchResult(
        name="partitioned_history",
        ratio=ratios[worst],
        ours=large[worst],
        baseline=small[worst],
        unit=f"ms p95 ({worst}, {ROWS:,} rows vs {SMALL:,}, partitioned by day)",
        target="<= 2.0",
        extra={
            "rows_per_table": ROWS,
            "load_s": load_s,
            "small_ms": small,
            "large_ms": large,
            "ingest_rows_per_s": ours,
            "copy_rows_per_s": base,
            "ingest_ratio": ours / base,
            "retention_drop_one_day_s": drop_s,
            "retention_rows_dropped": held,
            "delete_one_day_s": delete_s,
            "delete_rows": deleted,
        },
    )
