"""stats_scaling: p95 latency of the queue stats and job stats endpoints with 1,000,000
rows per table / with 10,000 rows. Target: ratio <= 2.0.

Rows are spread evenly over the last 7 days (the default retention keeps exactly that
much) in time order, as ingest appends them, generated inside Postgres with
generate_series; then the hourly rollups are rebuilt with
``rest_service.crud.rollups.rebuild`` (what ingest would have maintained incrementally)
and the tables ANALYZEd. The reported ratio is the worse of the two endpoints.

Both data sets live at once, in two databases of one Postgres cluster, each served by its
own rest_service process (the same code and settings). The machine is shared and its load
moves within seconds, so the reported figure is paired: ROUNDS short rounds, each calling
one endpoint ROUND_REQUESTS times on the small service and on the large one back to back
(alternating which goes first); ratio = median over the rounds of (p95 large / p95 small).
Both sides of a round see the same moment of load; a busy moment no longer lands on one
side only. The previous estimator is printed beside it from the same run ("sequential"):
REQUESTS calls per endpoint on the small service, then the large one, then the small one
again, large / the lower small p95.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import asyncpg
import httpx

from bench import BenchResult
from bench._rest import TOKEN, rest_service_on_postgres

SMALL = 10_000
LARGE = 1_000_000
REQUESTS = 150
ROUNDS = 12
ROUND_REQUESTS = 40
ENDPOINTS = {"queue_stats": "/api/v1/queue-stats", "job_stats": "/api/v1/job-executions/stats"}

QUEUE_SQL = """
INSERT INTO queue_message_logs (id, event_id, message_id, queue_name, direction, message_type,
    source, user_id, correlation_id, payload, payload_truncated, enqueued_at, dequeued_at,
    created_at)
SELECT gen_random_uuid(), 'gen-' || g, 'm' || (g / 2),
       (ARRAY['to_secretary', 'to_telegram'])[1 + g % 2],
       (ARRAY['push', 'pop'])[1 + (g / 2) % 2],
       (ARRAY['human', 'tool', 'trigger', 'response'])[1 + g % 4],
       (ARRAY['telegram', 'cron', 'calendar', NULL])[1 + (g / 3) % 4],
       1000 + g % 500, md5(g::text), '{"text": "generated message"}', false, t, NULL, t
FROM generate_series($1::bigint, $2::bigint) AS g,
     LATERAL (SELECT now() - interval '7 days' * (1 - g::float8 / $3)
                     + (random() - 0.5) * interval '60 s' AS t) AS x
"""

JOB_SQL = """
INSERT INTO job_executions (id, run_id, job_id, job_name, job_type, status, scheduled_at,
    started_at, finished_at, duration_ms, duration_bucket, user_id, created_at, updated_at)
SELECT gen_random_uuid(), 'gen-' || g, 'job-' || (g % 100), 'Generated job',
       (ARRAY['reminder', 'memory_extraction', 'update_reminders'])[1 + g % 3],
       st, t,
       CASE WHEN st IN ('scheduled', 'missed') THEN NULL ELSE t + interval '1 s' END,
       CASE WHEN st IN ('completed', 'failed') THEN t + interval '1 s' + d * interval '1 ms' END,
       CASE WHEN st IN ('completed', 'failed') THEN d END,
       CASE WHEN st IN ('completed', 'failed') THEN
            CASE WHEN d <= 0 THEN 0 ELSE greatest(1, ceil(16 * ln(d) / ln(2)) + 1) END END,
       1000 + g % 500, t, t
FROM generate_series($1::bigint, $2::bigint) AS g,
     LATERAL (SELECT now() - interval '7 days' * (1 - g::float8 / $3)
                     + (random() - 0.5) * interval '60 s' AS t,
                     (exp(7 + 1.5 * random()))::bigint AS d) AS x,
     -- runs still "running" or "scheduled" are the recent ones; older unfinished runs were
     -- marked timed_out / missed by the tracker's watchdog (issue 4), as in production
     LATERAL (SELECT CASE
         WHEN s0 = 'running' AND t < now() - interval '2 hours' THEN 'timed_out'
         WHEN s0 = 'scheduled' AND t < now() - interval '2 hours' THEN 'missed'
         ELSE s0 END AS st
       FROM (SELECT (ARRAY['completed', 'completed', 'completed', 'completed', 'completed',
                           'completed', 'completed', 'failed', 'failed', 'missed', 'timed_out',
                           'running', 'scheduled'])[1 + (g * 7) % 13] AS s0) AS s) AS y
"""


SECONDARY_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes
WHERE tablename IN ('queue_message_logs', 'job_executions')
  AND indexname NOT IN (SELECT conname FROM pg_constraint)
"""


async def _insert(dsn: str, sql: str, total: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        step = 250_000
        for lo in range(1, total + 1, step):
            await conn.execute(sql, lo, min(total, lo + step - 1), total)
    finally:
        await conn.close()


async def fill(dsn: str, total: int) -> None:
    """Replace the data with ``total`` rows per table, in time order as ingest writes them.

    Bulk-loaded the usual way: secondary indexes dropped, both tables filled in parallel,
    indexes recreated, VACUUM ANALYZE; the schema afterwards is exactly the migrated one.
    """
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE queue_message_logs, job_executions")
        indexes = await conn.fetch(SECONDARY_INDEXES)
        for row in indexes:
            await conn.execute(f'DROP INDEX "{row["indexname"]}"')
        await asyncio.gather(_insert(dsn, QUEUE_SQL, total), _insert(dsn, JOB_SQL, total))
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for row in indexes:
            # pg_indexes shows a partitioned table's index as "ON ONLY <parent>", which
            # would build it on the parent alone; rebuilt on every day partition instead
            await conn.execute(row["indexdef"].replace(" ON ONLY ", " ON "))
        await conn.execute("VACUUM ANALYZE queue_message_logs")
        await conn.execute("VACUUM ANALYZE job_executions")
    finally:
        await conn.close()


async def rebuild_rollups(database_url: str) -> None:
    from rest_service.core.config import Settings
    from rest_service.core.db import Database
    from rest_service.crud import rollups

    db = Database(Settings(database_url=database_url))
    try:
        await rollups.rebuild(db)
    finally:
        await db.dispose()
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18] * 1000  # ms


async def _calls(client: httpx.AsyncClient, path: str, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        r = await client.get(path)
        samples.append(time.perf_counter() - start)
        r.raise_for_status()
    return samples


async def p95s(url: str) -> dict[str, float]:
    """The previous estimator's figure: REQUESTS sequential calls per endpoint."""
    out = {}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        for name, path in ENDPOINTS.items():
            await _calls(client, path, 10)
            out[name] = p95(await _calls(client, path, REQUESTS))
    return out


async def paired_rounds(small_url: str, large_url: str) -> dict[str, list[float]]:
    """Per endpoint, ROUNDS values of p95(large) / p95(small), each from one short round
    in which both services were called back to back."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    ratios: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
    async with (
        httpx.AsyncClient(base_url=small_url, headers=headers, timeout=60) as small,
        httpx.AsyncClient(base_url=large_url, headers=headers, timeout=60) as large,
    ):
        for path in ENDPOINTS.values():
            await _calls(small, path, 10)
            await _calls(large, path, 10)
        for round_no in range(ROUNDS):
            for name, path in ENDPOINTS.items():
                if round_no % 2:
                    big = await _calls(large, path, ROUND_REQUESTS)
                    little = await _calls(small, path, ROUND_REQUESTS)
                else:
                    little = await _calls(small, path, ROUND_REQUESTS)
                    big = await _calls(large, path, ROUND_REQUESTS)
                ratios[name].append(p95(big) / p95(little))
    return ratios


def run() -> BenchResult:
    with (
        rest_service_on_postgres() as small_svc,
        rest_service_on_postgres(cluster=small_svc.pg, database="stats_large") as large_svc,
    ):
        t0 = time.perf_counter()
        asyncio.run(fill(small_svc.dsn, SMALL))
        asyncio.run(rebuild_rollups(small_svc.database_url))
        asyncio.run(fill(large_svc.dsn, LARGE))
        asyncio.run(rebuild_rollups(large_svc.database_url))
        print(f"  loaded {SMALL:,} and {LARGE:,} rows/table in {time.perf_counter() - t0:.0f} s")
        small = asyncio.run(p95s(small_svc.url))
        large = asyncio.run(p95s(large_svc.url))
        again = asyncio.run(p95s(small_svc.url))
        small = {k: min(small[k], again[k]) for k in ENDPOINTS}
        sequential = {k: large[k] / small[k] for k in ENDPOINTS}
        print(
            "  sequential (previous estimator): "
            + ", ".join(
                f"{k} {large[k]:.2f} / {small[k]:.2f} ms p95 = {sequential[k]:.3f}"
                for k in ENDPOINTS
            ),
            flush=True,
        )
        rounds = asyncio.run(paired_rounds(small_svc.url, large_svc.url))
    ratios = {k: statistics.median(v) for k, v in rounds.items()}
    for k, v in rounds.items():
        print(f"  {k} per-round p95 ratios: " + " ".join(f"{x:.2f}" for x in v), flush=True)
    worst = max(ratios, key=lambda k: ratios[k])
    print(
        "  ratios (1M / 10k, median of paired rounds): "
        + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())
        + " (target <= 2.0); sequential: "
        + ", ".join(f"{k} {v:.3f}" for k, v in sequential.items()),
        flush=True,
    )
    return BenchResult(
        name="stats_scaling",
        ratio=ratios[worst],
        ours=large[worst],
        baseline=small[worst],
        unit=f"ms p95 ({worst}, 1M rows vs 10k rows; ratio: median of paired rounds)",
        target="<= 2.0",
        extra={
            "small_ms": small,
            "large_ms": large,
            "sequential_ratios": sequential,
            "paired_round_ratios": rounds,
            "ratios": ratios,
        },
    )
