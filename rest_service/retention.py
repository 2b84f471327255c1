"""Retention: delete history older than RETENTION_DAYS in bounded batches.

Each batch is its own short transaction (``DELETE ... WHERE id IN (SELECT id ... LIMIT n)``)
so the task never holds long locks or builds one huge WAL record. The cutoff is rounded
down to the hour so the hourly rollups can be trimmed at exactly the same boundary and
stay equal to the raw rows. With time partitioning (see README.md, "Retention and
partitioning") this becomes ``DROP TABLE`` of whole partitions.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Table, select, text

from rest_service.core.config import Settings
from rest_service.core.db import Database, utcnow
from rest_service.crud.jobs import JOB_LOCK_KEY
from rest_service.crud.windows import hour_floor
from rest_service.models import (
    JobDurationHourly,
    JobExecution,
    JobHourly,
    QueueMessageHourly,
    QueueMessageLog,
)

log = structlog.get_logger("rest_service.retention")

JOB_TABLES = frozenset({"job_executions", "job_hourly", "job_duration_hourly"})


async def _delete_batches(
    db: Database, table: Table, column: str, cutoff: datetime, batch: int, pause: float
) -> int:
    total = 0
    col = table.c[column]
    key = table.c.get("id", None)
    while True:
        async with db.write_lock(), db.session() as session, session.begin():
            if db.is_postgres and table.name in JOB_TABLES:
                # job writes read-modify-write rows and rollups under this lock
                await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": JOB_LOCK_KEY})
            if key is not None:
                ids = select(key).where(col < cutoff).limit(batch).scalar_subquery()
                result = await session.execute(table.delete().where(key.in_(ids)))
            else:
                result = await session.execute(table.delete().where(col < cutoff))
            deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
        total += deleted
        if key is None or deleted < batch:
            return total
        await asyncio.sleep(pause)


async def purge(db: Database, settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """One retention pass. Returns rows deleted per table."""
    cutoff = hour_floor((now or utcnow()) - timedelta(days=settings.retention_days))
    batch = settings.retention_batch_size
    done: dict[str, int] = {}
    for model, column in (
        (JobExecution, "created_at"),
        (QueueMessageLog, "created_at"),
        (JobHourly, "hour"),
        (JobDurationHourly, "hour"),
        (QueueMessageHourly, "hour"),
    ):
        table: Table = model.__table__  # type: ignore[union-attr]
        # str(): a quoted_name key would push the log line onto the slower, other-styled
        # JSON fallback (orjson takes only exact str keys).
        done[str(table.name)] = await _delete_batches(db, table, column, cutoff, batch, 0.01)
    log.info("retention pass", event_type="retention", cutoff=cutoff.isoformat(), **done)
    return done


async def run_forever(db: Database, settings: Settings) -> None:
    """The periodic task the app starts; a failed pass is logged and retried next time."""
    while True:
        try:
            await purge(db, settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("retention pass failed", event_type="retention", error=type(exc).__name__)
        await asyncio.sleep(settings.retention_interval_seconds)
