"""Queue message history: idempotent batch ingest, listing, and per-queue stats.

Ingest on Postgres, fast path (one transaction): look up which event ids of the batch are
already stored (one index probe each), COPY the new rows in binary, and add them to the
hourly rollup. If a concurrent request stores one of the same events between the lookup
and the COPY, the unique index on event_id makes the COPY fail, the transaction rolls
back, and the batch goes through the always-safe path: one statement that ``unnest``s the
column arrays with INSERT ... ON CONFLICT (event_id) DO NOTHING and feeds its RETURNING
rows into the rollup upsert. Either way a re-sent batch adds no rows and no counts. COPY
instead of INSERT ... ON CONFLICT for the common case roughly halves the database time
per batch (bench/ingest_throughput.py). On SQLite: INSERT ... ON CONFLICT DO NOTHING
RETURNING and the rollup upsert in one transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from sqlalchemy import and_, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from rest_service.core.db import Database, utcnow
from rest_service.crud.text import truncate_text
from rest_service.crud.windows import hour_ceil, hour_floor
from rest_service.models import QueueDirection, QueueMessageHourly, QueueMessageLog
from rest_service.schemas import QueueEvent, QueueEventBatchResult, QueueStats

Q = QueueMessageLog.__table__  # type: ignore[attr-defined]
R = QueueMessageHourly.__table__  # type: ignore[attr-defined]

#: Row tuple layout for ingest (``id`` is generated: gen_random_uuid() / uuid4()).
COLUMNS = (
    "event_id",
    "message_id",
    "queue_name",
    "direction",
    "message_type",
    "source",
    "user_id",
    "correlation_id",
    "payload",
    "payload_truncated",
    "enqueued_at",
    "dequeued_at",
    "created_at",
)
PG_TYPES = (
    "text", "text", "text", "text", "text", "text", "int8", "text", "text", "bool",
    "timestamptz", "timestamptz", "timestamptz",
)  # fmt: skip

_UNNEST_ARGS = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(PG_TYPES))
PG_INGEST_SQL = f"""
WITH ins AS (
    INSERT INTO queue_message_logs (id, {", ".join(COLUMNS)})
    SELECT gen_random_uuid(), u.* FROM unnest({_UNNEST_ARGS}) AS u({", ".join(COLUMNS)})
    -- the unique key is (event_id, created_at) (partitioned by day): a re-send whose
    -- created_at differs (no timestamp: receipt time) is caught by the bare event_id
    WHERE NOT EXISTS (SELECT 1 FROM queue_message_logs q WHERE q.event_id = u.event_id)
    ON CONFLICT (event_id, created_at) DO NOTHING
    RETURNING queue_name, direction, message_type, source, created_at
), agg AS (
    SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
           queue_name, direction, message_type, coalesce(source, '') AS source, count(*) AS n
    FROM ins GROUP BY 1, 2, 3, 4, 5
), up AS (
    INSERT INTO queue_message_hourly AS h (hour, queue_name, direction, message_type, source,
                                          count)
    SELECT hour, queue_name, direction, message_type, source, n FROM agg ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (hour, queue_name, direction, message_type, source)
    DO UPDATE SET count = h.count + EXCLUDED.count
    RETURNING 1
)
SELECT count(*) FROM ins
"""  # noqa: S608 - built from module constants only


ROLLUP_UPSERT_SQL = """
INSERT INTO queue_message_hourly AS h (hour, queue_name, direction, message_type, source, count)
SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::int8[])
ON CONFLICT (hour, queue_name, direction, message_type, source)
DO UPDATE SET count = h.count + EXCLUDED.count
"""
#: Below this many rows the single ON CONFLICT statement (one round trip) beats the
#: lookup + COPY + rollup transaction (five).
COPY_MIN_ROWS = 64
EXISTING_SQL = "SELECT event_id FROM queue_message_logs WHERE event_id = ANY($1::text[])"
_IDX = {name: i for i, name in enumerate(COLUMNS)}


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def encode_payload(payload: Any, max_bytes: int) -> tuple[str | None, bool]:
    """Store any JSON value as JSON text (so NUL and odd characters arrive escaped)."""
    if payload is None:
        return None, False
    try:
        text = orjson.dumps(payload).decode()
    except (TypeError, orjson.JSONEncodeError):
        import json

        text = json.dumps(payload, ensure_ascii=True, default=str)
    return truncate_text(text, max_bytes)


def event_to_row(ev: QueueEvent, max_payload: int, now: datetime) -> tuple[Any, ...]:
    enq = _utc(ev.enqueued_at)
    deq = _utc(ev.dequeued_at)
    if ev.direction is QueueDirection.PUSH:
        created = enq or _utc(ev.at) or deq or now
    else:
        created = deq or _utc(ev.at) or enq or now
    payload, truncated = encode_payload(ev.payload, max_payload)
    return (
        ev.key,
        ev.message_id,
        ev.queue_name,
        ev.direction.value,
        ev.message_type,
        ev.source,
        ev.user_id,
        ev.correlation_id,
        payload,
        truncated,
        enq,
        deq,
        created,
    )


async def ingest_events(
    db: Database, events: Sequence[QueueEvent], max_payload: int
) -> QueueEventBatchResult:
    """Store a batch of queue events; events already stored (same key) are skipped."""
    now = utcnow()
    seen: set[str] = set()
    rows: list[tuple[Any, ...]] = []
    for ev in events:
        key = ev.key
        if key in seen:
            continue
        seen.add(key)
        rows.append(event_to_row(ev, max_payload, now))
    inserted = await insert_rows(db, rows) if rows else 0
    return QueueEventBatchResult(
        received=len(events), inserted=inserted, duplicates=len(events) - inserted
    )


async def insert_rows(db: Database, rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert row tuples (in ``COLUMNS`` order) idempotently and roll them up."""
    if db.is_postgres:
        async with db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            if len(rows) >= COPY_MIN_ROWS:
                try:
                    return await _copy_new_rows(driver, rows)
                except asyncpg.UniqueViolationError:
                    pass  # a concurrent request stored some of them: take the safe path
            columns = [list(col) for col in zip(*rows, strict=True)]
            async with driver.transaction():
                await _lock_unstamped(driver, rows)
                return int(await driver.fetchval(PG_INGEST_SQL, *columns))
    total = 0
    async with db.write_lock(), db.session() as session, session.begin():
        for chunk in _chunks(rows, 1000):
            # The unique key is (event_id, created_at): skip events stored under another
            # created_at (a re-send without timestamps) by their bare event_id.
            stored = set(
                (
                    await session.execute(
                        select(Q.c.event_id).where(Q.c.event_id.in_([r[0] for r in chunk]))
                    )
                ).scalars()
            )
            chunk = [r for r in chunk if r[0] not in stored]
            if not chunk:
                continue
            stmt = (
                sqlite_insert(Q)
                .values([{"id": uuid.uuid4(), **dict(zip(COLUMNS, r, strict=True))} for r in chunk])
                .on_conflict_do_nothing(index_elements=[Q.c.event_id, Q.c.created_at])
                .returning(
                    Q.c.queue_name, Q.c.direction, Q.c.message_type, Q.c.source, Q.c.created_at
                )
            )
            result = (await session.execute(stmt)).all()
            total += len(result)
            counts: dict[tuple[Any, ...], int] = defaultdict(int)
            for qn, direction, mtype, source, created in result:
                counts[
                    (hour_floor(_utc(created) or now_utc()), qn, direction, mtype, source or "")
                ] += 1
            if counts:
                ins = sqlite_insert(R)
                await session.execute(
                    ins.values(
                        [
                            {
                                "hour": k[0],
                                "queue_name": k[1],
                                "direction": k[2],
                                "message_type": k[3],
                                "source": k[4],
                                "count": n,
                            }
                            for k, n in sorted(counts.items())
                        ]
                    ).on_conflict_do_update(
                        index_elements=[
                            R.c.hour,
                            R.c.queue_name,
                            R.c.direction,
                            R.c.message_type,
                            R.c.source,
                        ],
                        set_={"count": R.c.count + ins.excluded.count},
                    )
                )
    return total


async def _copy_new_rows(driver: Any, rows: Sequence[tuple[Any, ...]]) -> int:
    """The fast path: skip stored events, COPY the rest, roll them up; one transaction."""
    async with driver.transaction():
        await _lock_unstamped(driver, rows)
        stored = {r[0] for r in await driver.fetch(EXISTING_SQL, [r[0] for r in rows])}
        new = [(uuid.uuid4(), *r) for r in rows if r[0] not in stored]
        if not new:
            return 0
        await driver.copy_records_to_table(
            "queue_message_logs", records=new, columns=["id", *COLUMNS]
        )
        counts: dict[tuple[Any, ...], int] = defaultdict(int)
        q, d, t, src, ts = (
            _IDX[c] + 1 for c in ("queue_name", "direction", "message_type", "source", "created_at")
        )
        for r in new:
            counts[(hour_floor(r[ts]), r[q], r[d], r[t], r[src] or "")] += 1
        keys = sorted(counts)  # a fixed lock order across concurrent batches
        await driver.execute(
            ROLLUP_UPSERT_SQL,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [k[3] for k in keys],
            [k[4] for k in keys],
            [counts[k] for k in keys],
        )
        return len(new)


#: Serialises concurrent stores of the same event_id, for events without a timestamp only.
UNSTAMPED_LOCK_SQL = (
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 7)) FROM unnest($1::text[]) AS k ORDER BY k"
)


async def _lock_unstamped(driver: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """The unique key is (event_id, created_at) (partitioned by day). An event without
    enqueued_at/dequeued_at may get its created_at from ``at`` or the receipt time, so two
    concurrent requests carrying the same such event could disagree on created_at and
    both insert. A transaction-scoped advisory lock per such event_id (sorted: no deadlock)
    makes the second wait and then see the first one's row (NOT EXISTS / the lookup).
    The shipper always sends timestamps, so this normally locks nothing."""
    keys = sorted(
        {r[0] for r in rows if r[_IDX["enqueued_at"]] is None and r[_IDX["dequeued_at"]] is None}
    )
    if keys:
        await driver.execute(UNSTAMPED_LOCK_SQL, keys)


def now_utc() -> datetime:
    return utcnow()


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def list_messages(
    db: Database,
    *,
    since: datetime,
    queue_name: str | None = None,
    user_id: int | None = None,
    correlation_id: str | None = None,
    message_id: str | None = None,
    direction: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[QueueMessageLog]:
    """Newest first; ties broken by id so pages are stable."""
    stmt = select(QueueMessageLog).where(Q.c.created_at >= since)
    if queue_name is not None:
        stmt = stmt.where(Q.c.queue_name == queue_name)
    if user_id is not None:
        stmt = stmt.where(Q.c.user_id == user_id)
    if correlation_id is not None:
        stmt = stmt.where(Q.c.correlation_id == correlation_id)
    if message_id is not None:
        stmt = stmt.where(Q.c.message_id == message_id)
    if direction is not None:
        stmt = stmt.where(Q.c.direction == direction)
    stmt = stmt.order_by(Q.c.created_at.desc(), Q.c.id.desc()).offset(offset).limit(limit)
    async with db.session() as session:
        return list((await session.execute(stmt)).scalars().all())


async def known_queue_names(
    db: Database, configured: Iterable[str], session: AsyncSession | None = None
) -> list[str]:
    """Configured queues plus every queue that appears in the (small) rollup table."""
    stmt = select(R.c.queue_name).distinct()
    if session is None:
        async with db.session() as own:
            found = (await own.execute(stmt)).scalars().all()
    else:
        found = (await session.execute(stmt)).scalars().all()
    return sorted(set(configured) | set(found))


async def _window_counts(
    session: AsyncSession, since: datetime
) -> dict[tuple[str, str, str, str], int]:
    """Events since ``since`` by (queue, direction, type, source): rollup + raw edge."""
    edge_end = hour_ceil(since)
    counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
    rollup = await session.execute(
        select(R.c.queue_name, R.c.direction, R.c.message_type, R.c.source, func.sum(R.c.count))
        .where(R.c.hour >= edge_end)
        .group_by(R.c.queue_name, R.c.direction, R.c.message_type, R.c.source)
    )
    src = func.coalesce(Q.c.source, "")
    edge = await session.execute(
        select(Q.c.queue_name, Q.c.direction, Q.c.message_type, src, func.count())
        .where(and_(Q.c.created_at >= since, Q.c.created_at < edge_end))
        .group_by(Q.c.queue_name, Q.c.direction, Q.c.message_type, src)
    )
    for qn, direction, mtype, source, n in [*rollup.all(), *edge.all()]:
        counts[(qn, direction, mtype, source or "")] += int(n or 0)
    return counts


async def queue_stats(
    db: Database, configured: Iterable[str], now: datetime | None = None
) -> list[QueueStats]:
    """Per queue: all-time (retained) totals, last hour, last 24 h by type/source/direction."""
    now = now or utcnow()
    async with db.session() as session:
        names = await known_queue_names(db, configured, session)
        totals_rows = await session.execute(
            select(R.c.queue_name, R.c.direction, func.sum(R.c.count)).group_by(
                R.c.queue_name, R.c.direction
            )
        )
        totals: dict[tuple[str, str], int] = {
            (qn, d): int(n or 0) for qn, d, n in totals_rows.all()
        }
        day = await _window_counts(session, now - timedelta(hours=24))
        hour = await _window_counts(session, now - timedelta(hours=1))
    out = []
    for name in names:
        by_type: dict[str, int] = defaultdict(int)
        by_source: dict[str, int] = defaultdict(int)
        by_direction: dict[str, int] = defaultdict(int)
        for (qn, direction, mtype, source), n in day.items():
            if qn != name or n == 0:
                continue
            by_type[mtype] += n
            by_source[source or "unknown"] += n
            by_direction[direction] += n
        pushed = totals.get((name, QueueDirection.PUSH.value), 0)
        popped = totals.get((name, QueueDirection.POP.value), 0)
        out.append(
            QueueStats(
                queue_name=name,
                total_messages=pushed + popped,
                pushed=pushed,
                popped=popped,
                messages_last_hour=sum(n for k, n in hour.items() if k[0] == name),
                messages_last_24h=sum(by_direction.values()),
                by_type=dict(by_type),
                by_source=dict(by_source),
                by_direction=dict(by_direction),
            )
        )
    return out
