"""stats_cardinality: the stats routes with 10,000 queue names and 10,000 job types, and
whether /health stays answered while they run (issue 10 §5).

Before the fix, per-queue stats rescanned every (queue, type, source) key once per queue
name: with 5,000 names ``/api/v1/queue-stats`` took about 4 s, ``/admin/queues`` 12-16 s,
and ``/health`` waited 13 s behind them because the event loop was busy in Python.

Data: ROWS queue events over NAMES queue names and ROWS job runs over NAMES job types,
spread over the last 7 days and generated inside Postgres (as in stats_scaling), then the
hourly rollups are rebuilt and the tables ANALYZEd. /health is first timed alone
(baseline); then each stats route is called REQUESTS times in a row while a second client
calls /health back to back, and both p95s are printed. The ratio is the worst /health
p95 during a stats route over /health's p95 alone: the event loop's stall, not the stats
routes' own speed (their p95s are printed next to it).

``STATS_BENCH_SERVICE_SRC=DIR`` serves the rest_service package found in DIR instead
(e.g. ``git archive <commit> rest_service | tar -x -C DIR``) to measure an older version
on the same data; ``STATS_BENCH_REQUESTS`` sets REQUESTS (an old version may need
seconds per call). Routes that version does not know (422) are reported and skipped.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import time

import asyncpg
import httpx

from bench import BenchResult
from bench._rest import TOKEN, rest_service_on_postgres
from bench.stats_scaling import rebuild_rollups

NAMES = 10_000
ROWS = 200_000
REQUESTS = int(os.environ.get("STATS_BENCH_REQUESTS", "30"))
HEALTH_ALONE = 300

ROUTES = {
    "queue_stats (page of 100)": "/api/v1/queue-stats",
    "queue_stats (page of 1000)": "/api/v1/queue-stats?limit=1000",
    "queue_stats (a later page)": "/api/v1/queue-stats?limit=100&after=queue-9950",
    "job_stats (10k types)": "/api/v1/job-executions/stats",
    "admin queues page": "/admin/queues",
}

QUEUE_SQL = """
INSERT INTO queue_message_logs (id, event_id, message_id, queue_name, direction, message_type,
    source, user_id, correlation_id, payload, payload_truncated, enqueued_at, dequeued_at,
    created_at)
SELECT gen_random_uuid(), 'gen-' || g, 'm' || (g / 2), 'queue-' || ((g / 2) % $2),
       (ARRAY['push', 'pop'])[1 + g % 2],
       (ARRAY['human', 'tool', 'trigger', 'response'])[1 + (g / 2) % 4],
       (ARRAY['telegram', 'cron', 'calendar', NULL])[1 + (g / 6) % 4],
       1000 + g % 500, md5(g::text), '{"text": "generated message"}', false, t, NULL, t
FROM generate_series(1, $1::bigint) AS g,
     LATERAL (SELECT now() - interval '7 days' * (1 - g::float8 / $1)
                     + (random() - 0.5) * interval '60 s' AS t) AS x
"""

JOB_SQL = """
INSERT INTO job_executions (id, run_id, job_id, job_name, job_type, status, scheduled_at,
    started_at, finished_at, duration_ms, duration_bucket, user_id, created_at, updated_at)
SELECT gen_random_uuid(), 'gen-' || g, 'job-' || (g % $2), 'Generated job',
       'type-' || (g % $2), st, t, t,
       CASE WHEN st IN ('completed', 'failed') THEN t + d * interval '1 ms' END,
       CASE WHEN st IN ('completed', 'failed') THEN d END,
       CASE WHEN st IN ('completed', 'failed') THEN
            CASE WHEN d <= 0 THEN 0 ELSE greatest(1, ceil(16 * ln(d) / ln(2)) + 1) END END,
       1000 + g % 500, t, t
FROM generate_series(1, $1::bigint) AS g,
     LATERAL (SELECT now() - interval '7 days' * (1 - g::float8 / $1)
                     + (random() - 0.5) * interval '60 s' AS t,
                     (exp(7 + 1.5 * random()))::bigint AS d,
                     (ARRAY['completed', 'completed', 'completed', 'failed', 'missed',
                            'timed_out'])[1 + (g * 7) % 6] AS st) AS x
"""


async def fill(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE queue_message_logs, job_executions")
        await conn.execute(QUEUE_SQL, ROWS, NAMES)
        await conn.execute(JOB_SQL, ROWS, NAMES)
        await conn.execute("VACUUM ANALYZE queue_message_logs")
        await conn.execute("VACUUM ANALYZE job_executions")
        got = await conn.fetchval("SELECT count(DISTINCT queue_name) FROM queue_message_logs")
        types = await conn.fetchval("SELECT count(DISTINCT job_type) FROM job_executions")
        print(f"  loaded {ROWS:,} queue events over {got:,} queue names, "
              f"{ROWS:,} job runs over {types:,} job types", flush=True)  # fmt: skip
    finally:
        await conn.close()


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18] * 1000


async def admin_login(client: httpx.AsyncClient) -> None:
    form = await client.get("/admin/login")
    nonce = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
    if nonce is None:
        raise RuntimeError("admin login form without a nonce")
    r = await client.post(
        "/admin/login", data={"token": TOKEN, "login_csrf": nonce.group(1), "next": "/admin"}
    )
    if r.status_code != 303:
        raise RuntimeError(f"admin login failed: {r.status_code}")


async def health_alone(url: str) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for _ in range(20):
            await client.get("/health")
        samples = []
        for _ in range(HEALTH_ALONE):
            start = time.perf_counter()
            (await client.get("/health")).raise_for_status()
            samples.append(time.perf_counter() - start)
    return p95(samples)


Timing = tuple[float, float, float, int, int]


async def route_with_health(url: str, path: str) -> Timing | None:
    """(route p95 ms, /health p95 and max ms meanwhile, response bytes, /health calls);
    None when the service does not know the route's parameters (422)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client,
        httpx.AsyncClient(base_url=url, timeout=120) as prober,
    ):
        if path.startswith("/admin"):
            await admin_login(client)
        first = await client.get(path)
        if first.status_code == 422:
            return None
        first.raise_for_status()
        for _ in range(2):
            (await client.get(path)).raise_for_status()
        done = asyncio.Event()
        health: list[float] = []

        async def probe() -> None:
            while not done.is_set():
                start = time.perf_counter()
                (await prober.get("/health")).raise_for_status()
                health.append(time.perf_counter() - start)

        task = asyncio.create_task(probe())
        samples = []
        size = 0
        for _ in range(REQUESTS):
            start = time.perf_counter()
            r = await client.get(path)
            samples.append(time.perf_counter() - start)
            r.raise_for_status()
            size = len(r.content)
        done.set()
        await task
    return p95(samples), p95(health), max(health) * 1000, size, len(health)


async def measure(url: str) -> dict[str, Timing]:
    out: dict[str, Timing] = {}
    for name, path in ROUTES.items():
        got = await route_with_health(url, path)
        if got is None:
            print(f"  {name}: not supported by this version (422), skipped", flush=True)
            continue
        out[name] = got
        route, health, worst, size, calls = got
        print(
            f"  {name}: p95 {route:.1f} ms ({size / 1024:.0f} KiB); /health meanwhile "
            f"p95 {health:.1f} ms, max {worst:.1f} ms over {calls} calls",
            flush=True,
        )
    return out


def run() -> BenchResult:
    src = os.environ.get("STATS_BENCH_SERVICE_SRC")
    if src:
        # ``python -m uvicorn`` puts its working directory first on sys.path
        os.chdir(src)
    with rest_service_on_postgres() as svc:
        asyncio.run(fill(svc.dsn))
        asyncio.run(rebuild_rollups(svc.database_url))
        alone = asyncio.run(health_alone(svc.url))
        print(f"  /health alone: p95 {alone:.2f} ms", flush=True)
        results = asyncio.run(measure(svc.url))
    worst = max(results, key=lambda k: results[k][1])
    during = results[worst][1]
    return BenchResult(
        name="stats_cardinality",
        ratio=during / alone,
        ours=during,
        baseline=alone,
        unit=f"ms /health p95 (during {worst} vs alone)",
        target="/health p95 during any stats route under 100 ms",
        extra={
            "health_alone_ms": alone,
            "routes": {
                k: {"p95_ms": r, "health_p95_ms": h, "health_max_ms": m, "bytes": b}
                for k, (r, h, m, b, _) in results.items()
            },
        },
    )
