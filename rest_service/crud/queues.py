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

import os
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any

import asyncpg
import orjson
from sqlalchemy import (
    ARRAY,
    BigInteger,
    String,
    and_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from otel_assist.history import wire
from rest_service.core.db import Database, utcnow
from rest_service.crud.text import truncate_text
from rest_service.crud.windows import hour_floor, split_window
from rest_service.models import QueueDirection, QueueMessageHourly, QueueMessageLog
from rest_service.schemas import (
    QueueEvent,
    QueueEventBatchResult,
    QueueEventFields,
    QueueStats,
    event_fields,
)

Q = QueueMessageLog.__table__  # type: ignore[attr-defined]
R = QueueMessageHourly.__table__  # type: ignore[attr-defined]

#: Row tuple layout for ingest. ``id`` is a random UUID made by ``new_ids`` (32 hex digits).
COLUMNS = (
    "id",
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
    "uuid", "text", "text", "text", "text", "text", "text", "int8", "text", "text", "bool",
    "timestamptz", "timestamptz", "timestamptz",
)  # fmt: skip

_UNNEST_ARGS = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(PG_TYPES))
PG_INGEST_SQL = f"""
WITH ins AS (
    INSERT INTO queue_message_logs ({", ".join(COLUMNS)})
    SELECT u.* FROM unnest({_UNNEST_ARGS}) AS u({", ".join(COLUMNS)})
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
_KEY = _IDX["event_id"]


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _as_utc(ts: datetime) -> datetime:
    """Naive means UTC; an aware time is converted (OverflowError beyond year 9999), a zero
    offset too: pydantic-core dates a parsed time with its own ``TzInfo``, and asyncpg's
    timestamptz encoder calls that tzinfo's ``utcoffset`` three times per value and makes a
    UTC copy, where a ``datetime.UTC`` time costs it nothing of the kind. Converting once
    here (``created_at`` is the same object as one of the others) cost 0.1 ms per 1,000
    events and saved 0.65 ms of the COPY's encoding (bench/ingest_throughput)."""
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
    """One event as a row tuple in ``COLUMNS`` order (times in UTC)."""
    rows, late = event_rows([event_fields(ev)], max_payload, now)
    if late:
        raise ValueError(wire.time_bounds_message())
    return rows[0]


#: (batch index, field) of an event time out of range: later than ``latest``, or beyond
#: what a datetime holds once converted to UTC (``9999-12-31T23:59:59-01:00``).
LateTimes = list[tuple[int, str]]
_PUSH = QueueDirection.PUSH
_DIRECTION_TEXT = {d: d.value for d in QueueDirection}


def event_rows(
    events: Sequence[QueueEventFields],
    max_payload: int,
    now: datetime,
    latest: datetime | None = None,
) -> tuple[list[tuple[Any, ...]], LateTimes]:
    """Validated events -> row tuples in ``COLUMNS`` order, in one pass over the batch.

    The hot part of ingest: a batch carries up to MAX_BATCH_EVENTS events, so everything
    per event happens here once (UTC conversion, the upper time bound, created_at, the
    payload's JSON text, de-duplication inside the batch by key). An event whose key
    appeared earlier in the batch is dropped. Events with a time out of range are
    reported in the second value (and give no row); the routes refuse the batch then.
    """
    seen: set[str] = set()
    rows: list[tuple[Any, ...]] = []
    late: LateTimes = []
    direction_text = _DIRECTION_TEXT
    utc = UTC
    ids = new_ids(len(events))
    for index, ev in enumerate(events):
        enq, deq, at = ev["enqueued_at"], ev["dequeued_at"], ev["at"]
        try:  # ``_as_utc``, inlined: two or three times per event
            if enq is not None:
                enq = enq.astimezone(utc) if enq.tzinfo is not None else enq.replace(tzinfo=utc)
            if deq is not None:
                deq = deq.astimezone(utc) if deq.tzinfo is not None else deq.replace(tzinfo=utc)
            if at is not None:
                at = at.astimezone(utc) if at.tzinfo is not None else at.replace(tzinfo=utc)
        except OverflowError:
            late.extend(_late_fields(index, ev, latest))
            continue
        if latest is not None and (
            (enq is not None and enq > latest)
            or (deq is not None and deq > latest)
            or (at is not None and at > latest)
        ):
            late.extend(_late_fields(index, ev, latest))
            continue
        direction = ev["direction"]
        key = ev["event_id"] or f"{ev['message_id']}:{direction_text[direction]}"
        if key in seen:
            continue
        seen.add(key)
        # a push happened when it was enqueued, a pop when it was dequeued
        created = (enq or at or deq or now) if direction is _PUSH else (deq or at or enq or now)
        payload, truncated = (
            (None, False) if ev["payload"] is None else encode_payload(ev["payload"], max_payload)
        )
        rows.append(
            (
                ids[index],
                key,
                ev["message_id"],
                ev["queue_name"],
                direction_text[direction],
                ev["message_type"],
                ev["source"],
                ev["user_id"],
                ev["correlation_id"],
                payload,
                truncated,
                enq,
                deq,
                created,
            )
        )
    return rows, late


def _late_fields(index: int, ev: QueueEventFields, latest: datetime | None) -> LateTimes:
    """Which of one event's times are out of range (the slow path of ``event_rows``)."""
    out: LateTimes = []
    for name in ("enqueued_at", "dequeued_at", "at"):
        value = ev[name]
        if value is None:
            continue
        try:
            utc = _as_utc(value)
        except OverflowError:
            out.append((index, name))
            continue
        if latest is not None and utc > latest:
            out.append((index, name))
    return out


async def ingest_events(
    db: Database, events: Sequence[QueueEvent], max_payload: int
) -> QueueEventBatchResult:
    """Store a batch of queue events; events already stored (same key) are skipped.

    No upper time bound here (the routes apply MAX_CLOCK_SKEW_SECONDS through
    ``event_rows``); a time beyond datetime's range in UTC is a ValueError."""
    rows, late = event_rows([event_fields(e) for e in events], max_payload, utcnow())
    if late:
        raise ValueError(wire.time_bounds_message())
    return await store_rows(db, rows, len(events))


async def store_rows(
    db: Database, rows: Sequence[tuple[Any, ...]], received: int
) -> QueueEventBatchResult:
    """``insert_rows`` with the batch's counts: ``received`` events, the rest duplicates."""
    inserted = await insert_rows(db, rows) if rows else 0
    return QueueEventBatchResult(
        received=received, inserted=inserted, duplicates=received - inserted
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
                        select(Q.c.event_id).where(Q.c.event_id.in_([r[_KEY] for r in chunk]))
                    )
                ).scalars()
            )
            chunk = [r for r in chunk if r[_KEY] not in stored]
            if not chunk:
                continue
            stmt = (
                sqlite_insert(Q)
                .values(
                    [
                        {**dict(zip(COLUMNS, r, strict=True)), "id": uuid.UUID(hex=r[0])}
                        for r in chunk
                    ]
                )
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
        keys = [r[_KEY] for r in rows]
        stored = {r[0] for r in await driver.fetch(EXISTING_SQL, keys)}
        fresh = [r for r in rows if r[_KEY] not in stored] if stored else rows
        if not fresh:
            return 0
        await driver.copy_records_to_table("queue_message_logs", records=fresh, columns=COLUMNS)
        hours, queues, directions, types, sources, counts = rollup_counts(fresh)
        await driver.execute(ROLLUP_UPSERT_SQL, hours, queues, directions, types, sources, counts)
        return len(fresh)


#: A UTC time's hour as plain ints: hashing and comparing them is cheaper than making a
#: truncated datetime per row (``replace`` per row cost more than the whole count).
_HOUR_FIELDS = attrgetter("year", "month", "day", "hour")
_ROLLUP_IDX = tuple(
    _IDX[c] for c in ("created_at", "queue_name", "direction", "message_type", "source")
)


def rollup_counts(rows: Sequence[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """The rows' hourly rollup increments as the columns of ``ROLLUP_UPSERT_SQL``: hour,
    queue, direction, type, source ('' for none), count; in key order (a fixed lock order
    across concurrent batches; one entry per key, as ON CONFLICT DO UPDATE requires).
    Counted over the transposed columns with C iterators (``zip``, ``map``, ``Counter``):
    no Python code runs per row, only per distinct key. ``created_at`` must be in UTC, as
    ``event_rows`` makes it."""
    columns = list(zip(*rows, strict=True))
    ts, q, d, t, src = (columns[i] for i in _ROLLUP_IDX)
    raw = Counter(zip(map(_HOUR_FIELDS, ts), q, d, t, src, strict=True))
    merged: Counter[tuple[Any, ...]] = Counter()
    for (hour, queue, direction, mtype, source), n in raw.items():
        merged[(datetime(*hour, tzinfo=UTC), queue, direction, mtype, source or "")] += n
    keys = sorted(merged)
    return (
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [k[3] for k in keys],
        [k[4] for k in keys],
        [merged[k] for k in keys],
    )


_V4 = bytes((b & 0x0F) | 0x40 for b in range(256))  # version nibble 4
_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))  # RFC 4122 variant bits


def new_ids(n: int) -> list[str]:
    """``n`` random (version 4) UUIDs as 32 hex digits, from one ``os.urandom`` call
    (asyncpg encodes that text form directly). ``uuid.uuid4()`` per row cost 3 ms per 1,000 rows."""
    raw = bytearray(os.urandom(16 * n))
    raw[6::16] = raw[6::16].translate(_V4)
    raw[8::16] = raw[8::16].translate(_VARIANT)
    text = raw.hex()
    return [text[i : i + 32] for i in range(0, 32 * n, 32)]


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
    enq, deq = _IDX["enqueued_at"], _IDX["dequeued_at"]
    keys = sorted({r[_KEY] for r in rows if r[enq] is None and r[deq] is None})
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


#: Distinct queue names by a skip scan of the (queue_name, created_at) index: one index
#: probe per name, stopping after :limit names, instead of reading every row (the rollup's
#: key starts with the hour, so it has no such index; retention trims the raw table and
#: the rollup at the same boundary, so both hold the same names). The configured names
#: are merged in SQL so that the order is the database's collation throughout. Works as
#: written on SQLite and Postgres.
_WALK = """
WITH RECURSIVE walk(name, n) AS (
    SELECT (SELECT queue_name FROM queue_message_logs WHERE queue_name > :after
            ORDER BY queue_name LIMIT 1), 1
    UNION ALL
    SELECT (SELECT q.queue_name FROM queue_message_logs AS q WHERE q.queue_name > walk.name
            ORDER BY q.queue_name LIMIT 1), walk.n + 1
    FROM walk WHERE walk.name IS NOT NULL AND walk.n < :limit
), names AS (
    SELECT name FROM walk WHERE name IS NOT NULL{configured}
)
"""
_CONFIGURED = (
    " UNION SELECT CAST(:c{i} AS VARCHAR) WHERE CAST(:c{i} AS VARCHAR) > CAST(:after AS VARCHAR)"
)


def _names_sql(configured: Iterable[str], tail: str) -> tuple[Any, dict[str, Any]]:
    wanted = sorted(set(configured))
    params = {f"c{i}": name for i, name in enumerate(wanted)}
    extra = "".join(_CONFIGURED.format(i=i) for i in range(len(wanted)))
    return text(_WALK.format(configured=extra) + tail), params


async def queue_names_page(
    session: AsyncSession, configured: Iterable[str], limit: int, after: str = ""
) -> tuple[list[str], bool]:
    """Up to ``limit`` queue names (configured ones included) after ``after`` in name
    order, and whether more follow. Costs ``limit`` index probes, whatever the number of
    queues (keyset paging: a page never skips or repeats a name while queues appear)."""
    stmt, params = _names_sql(configured, "SELECT name FROM names ORDER BY name LIMIT :limit")
    rows = await session.execute(stmt, {**params, "after": after, "limit": limit + 1})
    names = [str(n) for n in rows.scalars().all()]
    return names[:limit], len(names) > limit


async def count_queue_names(
    session: AsyncSession, configured: Iterable[str], cap: int
) -> tuple[int, bool]:
    """How many queue names there are, counting at most ``cap`` (and whether it stopped
    there): a bounded cost for a page that only says "N more"."""
    stmt, params = _names_sql(configured, "SELECT count(*) FROM names")
    n = int(await session.scalar(stmt, {**params, "after": "", "limit": cap + 1}) or 0)
    return min(n, cap), n > cap


async def busiest_queue_names(
    session: AsyncSession, configured: Sequence[str], limit: int, now: datetime
) -> list[str]:
    """The configured queues, then the others with the most pushes in about the last 24 h
    (whole rollup hours, through the rollup's hour-first key: this only orders the
    list), up to ``limit`` names. For pages that cannot show every queue."""
    chosen = list(dict.fromkeys(configured))[:limit]
    room = limit - len(chosen)
    if room > 0:
        pushes = func.sum(R.c.count)
        rows = await session.execute(
            select(R.c.queue_name)
            .where(
                R.c.hour >= hour_floor(now - timedelta(hours=24)),
                R.c.direction == QueueDirection.PUSH.value,
                R.c.queue_name.not_in(chosen) if chosen else true(),
            )
            .group_by(R.c.queue_name)
            .order_by(pushes.desc(), R.c.queue_name)
            .limit(room)
        )
        chosen += [str(n) for n in rows.scalars().all()]
    return chosen


def _one_of(column: Any, names: Sequence[str], postgres: bool) -> Any:
    """``column IN names`` with the names as ONE bound value (a text array unnested on
    Postgres, a JSON array read by json_each on SQLite), joined as a hashed semi-join:
    rendering a thousand separate parameters cost the event loop more than the query
    cost the database."""
    if postgres:
        array = bindparam("names", list(names), type_=ARRAY(String()), unique=True)
        return column.in_(select(func.unnest(array)))
    as_json = bindparam("names", orjson.dumps(list(names)).decode(), type_=String(), unique=True)
    return column.in_(select(literal_column("value")).select_from(func.json_each(as_json)))


def _window_rows(names: Sequence[str], now: datetime, postgres: bool) -> Any:
    """One statement: per (queue, direction, type, source) of ``names``, the retained total,
    the last 24 h and the last hour. Whole hours come from the rollup; the raw table
    (through its (queue_name, created_at) index) adds or subtracts at most half an hour
    of rows at each window's first hour (``split_window``). One statement, one snapshot:
    the rollup and the raw correction agree."""
    day, hour = split_window(now - timedelta(hours=24)), split_window(now - timedelta(hours=1))
    zero = literal(0, BigInteger())
    rollup = (
        select(
            R.c.queue_name,
            R.c.direction,
            R.c.message_type,
            R.c.source,
            func.sum(R.c.count).label("total"),
            func.sum(case((R.c.hour >= day.rollup_from, R.c.count), else_=zero)).label("day"),
            func.sum(case((R.c.hour >= hour.rollup_from, R.c.count), else_=zero)).label("hour"),
        )
        .where(_one_of(R.c.queue_name, names, postgres))
        .group_by(R.c.queue_name, R.c.direction, R.c.message_type, R.c.source)
    )
    in_day_edge = and_(Q.c.created_at >= day.raw_from, Q.c.created_at < day.raw_to)
    in_hour_edge = and_(Q.c.created_at >= hour.raw_from, Q.c.created_at < hour.raw_to)
    src = func.coalesce(Q.c.source, "")
    edge = (
        select(
            Q.c.queue_name,
            Q.c.direction,
            Q.c.message_type,
            src,
            zero,
            func.sum(case((in_day_edge, literal(day.sign, BigInteger())), else_=zero)),
            func.sum(case((in_hour_edge, literal(hour.sign, BigInteger())), else_=zero)),
        )
        .where(_one_of(Q.c.queue_name, names, postgres), or_(in_day_edge, in_hour_edge))
        .group_by(Q.c.queue_name, Q.c.direction, Q.c.message_type, src)
    )
    return union_all(rollup, edge)


@dataclass
class _Acc:
    """Per-queue sums while the statement's rows stream past (one pass, no rescans)."""

    pushed: int = 0
    popped: int = 0
    pushed_day: int = 0
    popped_day: int = 0
    pushed_hour: int = 0
    popped_hour: int = 0
    by_type: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_source: dict[str, int] = field(default_factory=lambda: defaultdict(int))


async def stats_for(session: AsyncSession, names: Sequence[str], now: datetime) -> list[QueueStats]:
    """Stats for the given queue names (in that order), from one SQL statement.

    The plan's names count messages, that is pushes: ``total_messages``,
    ``messages_last_hour``, ``messages_last_24h``, ``by_type`` and ``by_source``. Pops
    are given on their own, and ``in_flight`` is pushes minus pops over the retained
    history (never below 0; Redis has the live length, see /queue-stats/current).
    """
    if not names:
        return []
    acc: dict[str, _Acc] = {name: _Acc() for name in names}
    postgres = session.get_bind().dialect.name == "postgresql"
    result = await session.execute(_window_rows(names, now, postgres))
    push = QueueDirection.PUSH.value
    for qn, direction, mtype, source, total, day, hour in result.all():
        a = acc.get(qn)
        if a is None:
            continue
        total, day, hour = int(total or 0), int(day or 0), int(hour or 0)
        if direction == push:
            a.pushed += total
            a.pushed_day += day
            a.pushed_hour += hour
            if day:
                # a raw correction row may be negative (``split_window``): the sums are
                # exact, zero entries are dropped below
                a.by_type[mtype] += day
                a.by_source[source or "unknown"] += day
        else:
            a.popped += total
            a.popped_day += day
            a.popped_hour += hour
    out = []
    for name in names:
        a = acc[name]
        by_direction = {
            d: n
            for d, n in (
                (QueueDirection.PUSH.value, a.pushed_day),
                (QueueDirection.POP.value, a.popped_day),
            )
            if n
        }
        out.append(
            QueueStats(
                queue_name=name,
                total_messages=a.pushed,
                messages_last_hour=a.pushed_hour,
                messages_last_24h=a.pushed_day,
                by_type={k: n for k, n in a.by_type.items() if n},
                by_source={k: n for k, n in a.by_source.items() if n},
                pushed=a.pushed,
                popped=a.popped,
                pops_last_hour=a.popped_hour,
                pops_last_24h=a.popped_day,
                in_flight=max(0, a.pushed - a.popped),
                by_direction=by_direction,
            )
        )
    return out


async def queue_stats(
    db: Database,
    configured: Iterable[str],
    now: datetime | None = None,
    *,
    limit: int = 1000,
    after: str = "",
) -> tuple[list[QueueStats], bool]:
    """A page of per-queue stats in name order (after ``after``), and whether more follow."""
    now = now or utcnow()
    async with db.session() as session:
        names, more = await queue_names_page(session, configured, limit, after)
        return await stats_for(session, names, now), more
