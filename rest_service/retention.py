"""Retention: drop history older than RETENTION_DAYS, and keep the day partitions ready.

Postgres (history partitioned by day, rest_service/partitions.py): whole partitions older
than the cutoff are dropped (``DROP TABLE``, no row-by-row DELETE); the cutoff is rounded
down to the UTC day so the hourly rollups are trimmed at exactly the same boundary and stay
equal to the raw rows. The same periodic task creates the partitions of the next days and
drains the DEFAULT partition (``partitions.maintain``) before each retention pass.

SQLite (plain tables): bounded batches, each its own short transaction
(``DELETE ... WHERE id IN (SELECT id ... LIMIT n)``) so the task never holds long locks;
the cutoff is rounded down to the hour, for the same reason.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Table, select, text

from rest_service import partitions
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

#: Serialises partition maintenance across rest_service replicas ("restpart").
PARTITION_LOCK_KEY = 0x72_65_73_74_70_61_72_74

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
    raw: tuple[tuple[Any, str], ...] = (
        (JobExecution, "created_at"),
        (QueueMessageLog, "created_at"),
    )
    if db.is_postgres:
        day = cutoff.replace(hour=0)
        dropped = await _drop_partitions(db, day.date())
        if dropped is not None:
            cutoff = day  # rollups below are trimmed at the same (day) boundary
            done.update(dropped)
            raw = ()
    for model, column in (
        *raw,
        (JobHourly, "hour"),
        (JobDurationHourly, "hour"),
        (QueueMessageHourly, "hour"),
    ):
        table: Table = model.__table__
        # str(): a quoted_name key would push the log line onto the slower, other-styled
        # JSON fallback (orjson takes only exact str keys).
        done[str(table.name)] = await _delete_batches(db, table, column, cutoff, batch, 0.01)
    log.info("retention pass", task="retention", cutoff=cutoff.isoformat(), **done)
    return done


async def _drop_partitions(db: Database, cutoff: date) -> dict[str, int] | None:
    """Drop whole day partitions ending on or before ``cutoff``; rows removed per table
    (and partitions dropped, as ``<table>_partitions``), or None when the history is not
    partitioned (not migrated to 0002 yet)."""
    done: dict[str, int] = {}
    for table in partitions.TABLES:
        async with db.engine.begin() as conn:
            if not await conn.run_sync(partitions.is_partitioned, table):
                return None
            # waits for a maintenance pass of another replica (it creates partitions)
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PARTITION_LOCK_KEY})
            if table in JOB_TABLES:
                # job writes read-modify-write rows and rollups under this lock
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": JOB_LOCK_KEY})
            dropped = await conn.run_sync(partitions.drop_before, table, cutoff)
        done[table] = dropped.rows
        done[f"{table}_partitions"] = len(dropped.partitions)
    return done


async def maintain_partitions(db: Database, now: datetime | None = None) -> None:
    """Postgres only: partitions for today and the next days, DEFAULT drained."""
    if not db.is_postgres:
        return
    today = (now or utcnow()).astimezone(UTC).date()
    async with db.engine.begin() as conn:
        # several rest_service replicas run this task: one pass at a time, the others skip
        # (concurrent CREATE TABLE ... PARTITION OF of the same day would fail)
        got = await conn.execute(
            text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": PARTITION_LOCK_KEY}
        )
        if not got.scalar():
            return
        result = await conn.run_sync(partitions.maintain, today)
    if result.created or result.drained_days:
        log.info(
            "partitions maintained",
            event_type="retention",
            created=len(result.created),
            drained_days=result.drained_days,
        )


async def run_forever(db: Database, settings: Settings) -> None:
    """The periodic task the app starts; a failed pass is logged and retried next time."""
    while True:
        try:
            await maintain_partitions(db)
            await purge(db, settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("retention pass failed", task="retention", error=type(exc).__name__)
        await asyncio.sleep(settings.retention_interval_seconds)
