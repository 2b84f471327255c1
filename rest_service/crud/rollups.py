"""Rebuild the hourly rollups from the raw tables.

Ingest maintains the rollups incrementally; this recomputes them from scratch in SQL, for
bulk loads that bypass the API (a restore, a backfill, attaching a partition, the stats
benchmark) and as the reference the tests compare the incremental rollups with.
"""

from __future__ import annotations

from sqlalchemy import text

from rest_service.core.db import Database


def _hour(db: Database, column: str) -> str:
    if db.is_postgres:
        return f"date_trunc('hour', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' (naive UTC)
    return f"strftime('%Y-%m-%d %H:00:00.000000', {column})"


async def rebuild(db: Database) -> None:
    """Replace all rollup rows with a GROUP BY over the raw rows (one transaction)."""
    qh = _hour(db, "created_at")
    statements = [
        "DELETE FROM queue_message_hourly",
        "DELETE FROM job_hourly",
        "DELETE FROM job_duration_hourly",
        f"""INSERT INTO queue_message_hourly
               (hour, queue_name, direction, message_type, source, count)
            SELECT {qh}, queue_name, direction, message_type, coalesce(source, ''), count(*)
            FROM queue_message_logs GROUP BY 1, 2, 3, 4, 5""",  # noqa: S608 - constant SQL
        f"""INSERT INTO job_hourly
               (hour, job_type, status, runs, duration_count, duration_sum)
            SELECT {qh}, job_type, status, count(*), count(duration_ms),
                   coalesce(sum(duration_ms), 0)
            FROM job_executions GROUP BY 1, 2, 3""",  # noqa: S608 - constant SQL
        f"""INSERT INTO job_duration_hourly (hour, bucket, count)
            SELECT {qh}, duration_bucket, count(*) FROM job_executions
            WHERE duration_bucket IS NOT NULL GROUP BY 1, 2""",  # noqa: S608 - constant SQL
    ]
    async with db.write_lock(), db.session() as session, session.begin():
        for sql in statements:
            await session.execute(text(sql))
