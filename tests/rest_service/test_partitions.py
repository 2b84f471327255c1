"""Day-partitioned history on the real Postgres (migration 0002, rest_service/partitions.py).

- converting an existing, unpartitioned database keeps every row exactly once, also when a
  previous conversion was interrupted and rows changed meanwhile;
- re-sent events land in the same partition (and are not stored twice), whatever they hold;
- maintenance creates the partitions ahead and drains DEFAULT;
- retention drops whole day partitions, and the rollups stay equal to the raw rows;
- the stats queries' time bound prunes partitions (EXPLAIN);
- SQLite stays one plain table.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from rest_service import partitions
from rest_service.core import migrate
from rest_service.core.config import Settings
from rest_service.core.db import Database
from rest_service.crud import jobs as jobs_crud
from rest_service.crud import queues as queues_crud
from rest_service.models import QueueDirection
from rest_service.retention import maintain_partitions, purge
from rest_service.schemas import JobEvent, QueueEvent
from tests import servers

DAY = timedelta(days=1)


@pytest.fixture
async def pg_db(postgres: servers.Postgres) -> AsyncIterator[Database]:
    url = postgres.create_database(f"part_{uuid.uuid4().hex[:12]}")
    db = Database(Settings(database_url=url))
    try:
        yield db
    finally:
        await db.dispose()


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    async with db.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]


def _job_row(i: int, created: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "run_id": f"run-{i}",
        "job_id": f"job-{i % 7}",
        "job_name": "nightly",
        "job_type": "reminder",
        "status": "completed",
        "created_at": created,
        "updated_at": created,
    }


def _queue_row(i: int, created: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "event_id": f"ev-{i}",
        "queue_name": "to_secretary",
        "direction": "push",
        "message_type": "text",
        "payload_truncated": False,
        "payload": "\x01 é \U0001f600",
        "created_at": created,
    }


async def _insert_plain(db: Database, n: int, now: datetime) -> None:
    """History at revision 0001 (unpartitioned), spread over 12 days plus the edges."""
    times = [now - timedelta(hours=(i * 7) % (12 * 24)) for i in range(n)]
    times += [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)]
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO job_executions (id, run_id, job_id, job_name, job_type, status,"
                " created_at, updated_at) VALUES (:id, :run_id, :job_id, :job_name, :job_type,"
                " :status, :created_at, :updated_at)"
            ),
            [_job_row(i, t) for i, t in enumerate(times)],
        )
        await conn.execute(
            text(
                "INSERT INTO queue_message_logs (id, event_id, queue_name, direction,"
                " message_type, payload_truncated, payload, created_at) VALUES (:id, :event_id,"
                " :queue_name, :direction, :message_type, :payload_truncated, :payload,"
                " :created_at)"
            ),
            [_queue_row(i, t) for i, t in enumerate(times)],
        )


SNAPSHOT = {
    "job_executions": "SELECT id, run_id, status, created_at, updated_at FROM job_executions",
    "queue_message_logs": "SELECT id, event_id, payload, created_at FROM queue_message_logs",
}


async def test_conversion_keeps_every_row_once_after_an_interrupted_run(pg_db: Database) -> None:
    db = pg_db
    await migrate.upgrade(db, "0001")
    now = datetime.now(UTC)
    await _insert_plain(db, 3000, now)

    # An earlier conversion got part of the way (3 batches of 500 rows, committed) ...
    async with db.engine.begin() as conn:
        for table, key in (("job_executions", "run_id"), ("queue_message_logs", "event_id")):
            new = await conn.run_sync(partitions.create_partitioned_copy, table, key)
            copied = await conn.run_sync(partitions.copy_batches, table, new, 500, 3)
            assert copied == 1500
    # ... and the service kept writing meanwhile: an update to a copied row, a deleted copied
    # row, a new row.
    async with db.engine.begin() as conn:
        first = (
            await conn.execute(
                text("SELECT run_id FROM job_executions ORDER BY created_at, id LIMIT 1")
            )
        ).scalar()
        await conn.execute(
            text(
                "UPDATE job_executions SET status = 'failed', updated_at = now() WHERE run_id = :r"
            ),
            {"r": first},
        )
        await conn.execute(
            text(
                "DELETE FROM queue_message_logs WHERE id = "
                "(SELECT id FROM queue_message_logs ORDER BY created_at, id LIMIT 1)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO queue_message_logs (id, event_id, queue_name, direction,"
                " message_type, payload_truncated, created_at) VALUES (gen_random_uuid(),"
                " 'late', 'to_telegram', 'pop', 'text', false, now())"
            )
        )
    before = {t: sorted(await rows(db, q)) for t, q in SNAPSHOT.items()}

    await migrate.upgrade(db)

    for table, query in SNAPSHOT.items():
        async with db.engine.connect() as conn:
            assert await conn.run_sync(partitions.is_partitioned, table)
        after = sorted(await rows(db, query))
        assert after == before[table], table  # same rows, none lost, none doubled
        assert not await scalar(db, f"SELECT to_regclass('{table}_partitioned')")
        # today's partition and the ones ahead exist; the edge rows sit in DEFAULT
        names = set(
            await rows(
                db,
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = to_regclass(:t)",
                t=table,
            )
        )
        for d in range(partitions.AHEAD_DAYS + 1):
            assert (partitions.partition_name(table, (now + d * DAY).date()),) in names
        # asyncpg stores datetime(1, 1, 1, UTC) as -infinity (it maps datetime.min so): no
        # day has it, nor 9999-12-31 (its day has no end bound): both stay in DEFAULT (the
        # queue's -infinity row was the one deleted above)
        expected_default = 2 if table == "job_executions" else 1
        assert await scalar(db, f'SELECT count(*) FROM "{table}_default"') == expected_default
    assert await scalar(db, "SELECT status FROM job_executions WHERE run_id = :r", r=first) == (
        "failed"
    )
    # down and up again: the data survives both ways
    await migrate.downgrade(db, "0001")
    assert sorted(await rows(db, SNAPSHOT["queue_message_logs"])) == before["queue_message_logs"]
    await migrate.upgrade(db)
    assert sorted(await rows(db, SNAPSHOT["job_executions"])) == before["job_executions"]


# --------------------------------------------------------------------------- idempotency

_ids = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1, max_size=40
)
_times = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from(
            [UTC, datetime.now().astimezone().tzinfo, None]  # aware, local, naive
        ).map(lambda tz: tz),
    ),
)
_queue_events = st.lists(
    st.builds(
        lambda eid, direction, enq, deq, at: QueueEvent(
            event_id=eid,
            queue_name="to_secretary",
            direction=direction,
            message_type="text",
            enqueued_at=enq,
            dequeued_at=deq,
            at=at,
        ),
        _ids,
        st.sampled_from(list(QueueDirection)),
        _times,
        _times,
        _times,
    ),
    min_size=1,
    max_size=30,
)


async def test_resent_queue_events_are_stored_once(pg_db: Database) -> None:
    db = pg_db
    await migrate.upgrade(db)
    seen: set[str] = set()

    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    # The shuffle seed is drawn up front: st.randoms() draws lazily, so a large example can
    # overrun Hypothesis's buffer inside rnd.shuffle() -- after the first ingest wrote rows --
    # and Hypothesis then discards the example silently (seen never learns its keys).
    @given(_queue_events, st.integers(min_value=0, max_value=2**32))
    def check(events: list[QueueEvent], seed: int) -> None:
        rnd = random.Random(seed)

        async def run() -> None:
            await queues_crud.ingest_events(db, events, 4096)
            # re-sent later, shuffled, through both write paths (COPY for >= 64 rows)
            again = list(events) * (1 + 64 // len(events))
            rnd.shuffle(again)
            await queues_crud.ingest_events(db, again[:10], 4096)
            await queues_crud.ingest_events(db, again, 4096)

        asyncio.run_coroutine_threadsafe(run(), loop).result()
        seen.update(e.key for e in events)

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(check)
    stored = await rows(db, "SELECT event_id, count(*) FROM queue_message_logs GROUP BY 1")
    assert {e for e, _ in stored} == seen
    assert all(n == 1 for _, n in stored), [r for r in stored if r[1] > 1][:5]
    # each row sits in the partition of its own day (or DEFAULT if none exists for it)
    misplaced = await rows(
        db,
        "SELECT tableoid::regclass::text, created_at FROM queue_message_logs"
        " WHERE tableoid::regclass::text <> 'queue_message_logs_default' AND"
        " tableoid::regclass::text <> 'queue_message_logs_p' ||"
        " to_char(created_at AT TIME ZONE 'UTC', 'YYYYMMDD')",
    )
    assert misplaced == []


async def test_job_run_moves_partition_when_an_earlier_event_arrives(pg_db: Database) -> None:
    db = pg_db
    await migrate.upgrade(db)
    now = datetime.now(UTC).replace(hour=1)
    started = JobEvent(
        event_id="e-start", run_id="run-x", job_id="j", job_type="reminder", kind="started", at=now
    )
    scheduled = JobEvent(
        event_id="e-sched",
        run_id="run-x",
        job_id="j",
        job_type="reminder",
        kind="scheduled",
        at=now - timedelta(hours=3),  # the previous UTC day
    )
    await jobs_crud.ingest_events(db, [started], 4096)
    await jobs_crud.ingest_events(db, [scheduled, started], 4096)
    await jobs_crud.ingest_events(db, [scheduled], 4096)
    # yesterday had no partition on this fresh database: the row waited in DEFAULT until
    # the maintenance pass gave its day a partition
    await maintain_partitions(db)
    found = await rows(
        db, "SELECT tableoid::regclass::text, created_at, status FROM job_executions"
    )
    expected_part = partitions.partition_name("job_executions", (now - timedelta(hours=3)).date())
    assert found == [(expected_part, now - timedelta(hours=3), "running")]
    runs = await scalar(db, "SELECT coalesce(sum(runs), 0) FROM job_hourly")
    assert runs == 1  # the rollup moved with the row


# --------------------------------------------------------------------------- maintenance


async def test_maintenance_creates_ahead_and_drains_default(pg_db: Database) -> None:
    db = pg_db
    await migrate.upgrade(db)
    now = datetime.now(UTC)
    far = now + 40 * DAY
    events = [
        QueueEvent(
            event_id=f"f{i}",
            queue_name="to_telegram",
            direction=QueueDirection.POP,
            message_type="text",
            dequeued_at=far + timedelta(minutes=i),
        )
        for i in range(5)
    ]
    await queues_crud.ingest_events(db, events, 4096)
    assert await scalar(db, 'SELECT count(*) FROM "queue_message_logs_default"') == 5
    await maintain_partitions(db, now + 10 * DAY)  # a later pass: 10 days on
    assert await scalar(db, 'SELECT count(*) FROM "queue_message_logs_default"') == 0
    assert await scalar(db, "SELECT count(*) FROM queue_message_logs") == 5
    far_part = partitions.partition_name("queue_message_logs", far.date())
    assert await scalar(db, f'SELECT count(*) FROM "{far_part}"') == 5
    for d in range(10, 10 + partitions.AHEAD_DAYS + 1):
        name = partitions.partition_name("job_executions", (now + d * DAY).date())
        assert await scalar(db, "SELECT to_regclass(:n) IS NOT NULL", n=name)
    # a second pass changes nothing
    await maintain_partitions(db, now + 10 * DAY)
    assert await scalar(db, "SELECT count(*) FROM queue_message_logs") == 5


async def test_retention_drops_whole_partitions(pg_db: Database) -> None:
    db = pg_db
    await migrate.upgrade(db)
    now = datetime.now(UTC)
    events = [
        QueueEvent(
            event_id=f"r{i}",
            queue_name="to_secretary",
            direction=QueueDirection.PUSH,
            message_type="text",
            enqueued_at=now - timedelta(hours=6 * i),
        )
        for i in range(48)  # 12 days back
    ]
    await queues_crud.ingest_events(db, events, 4096)
    await maintain_partitions(db, now)
    settings_ = Settings(database_url="sqlite://", retention_days=7)
    cutoff = (now - 7 * DAY).replace(hour=0, minute=0, second=0, microsecond=0)
    old_part = partitions.partition_name("queue_message_logs", (now - 9 * DAY).date())
    assert await scalar(db, "SELECT to_regclass(:n) IS NOT NULL", n=old_part)
    done = await purge(db, settings_, now)
    assert done["queue_message_logs_partitions"] >= 4
    assert not await scalar(db, "SELECT to_regclass(:n) IS NOT NULL", n=old_part)
    kept = await scalar(db, "SELECT count(*) FROM queue_message_logs")
    assert kept == sum(1 for e in events if e.enqueued_at and e.enqueued_at >= cutoff)
    assert await scalar(db, "SELECT min(created_at) FROM queue_message_logs") >= cutoff
    # the rollups were trimmed at the same boundary: still equal to the raw rows
    assert await scalar(db, "SELECT sum(count) FROM queue_message_hourly") == kept


# --------------------------------------------------------------------------- pruning

STATS_QUERIES = [
    # the shapes of crud/queues.py's and crud/jobs.py's window queries
    "SELECT queue_name, direction, count(*) FROM queue_message_logs"
    " WHERE created_at >= :since AND created_at < :until GROUP BY 1, 2",
    "SELECT job_type, status, count(*) FROM job_executions"
    " WHERE created_at >= :since AND created_at < :until GROUP BY 1, 2",
    "SELECT count(*) FROM job_executions WHERE created_at >= :since AND duration_ms IS NOT NULL",
]


@pytest.mark.parametrize("query", STATS_QUERIES)
async def test_stats_queries_prune_partitions(pg_db: Database, query: str) -> None:
    db = pg_db
    await migrate.upgrade(db)
    now = datetime.now(UTC)
    async with db.engine.begin() as conn:
        for table in partitions.TABLES:
            await conn.run_sync(
                partitions.ensure_partitions, table, [(now - d * DAY).date() for d in range(10)]
            )
    async with db.engine.connect() as conn:
        plan = "\n".join(
            r[0]
            for r in await conn.execute(
                text("EXPLAIN " + query), {"since": now - timedelta(hours=1), "until": now}
            )
        )
    table = "queue_message_logs" if "queue_message_logs" in query else "job_executions"
    today = partitions.partition_name(table, now.date())
    old = partitions.partition_name(table, (now - 5 * DAY).date())
    assert today in plan, plan
    assert old not in plan, plan  # pruned: the 5-day-old partition is not scanned
    assert f"{table}_p" in plan


async def test_sqlite_stays_plain(tmp_path: Any) -> None:
    db = Database(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'h.sqlite3'}"))
    try:
        await migrate.upgrade(db)
        names = await rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")
        assert not [n for (n,) in names if partitions.is_partition_table(n)]
        sql = await scalar(db, "SELECT sql FROM sqlite_master WHERE name = 'queue_message_logs'")
        assert "PARTITION" not in sql.upper()
        assert "uq_queue_message_logs_event_id_created_at" in sql
    finally:
        await db.dispose()


@pytest.mark.parametrize("size", [5, 100])  # the single-statement path and the COPY path
async def test_concurrent_resends_without_timestamps_are_stored_once(
    pg_db: Database, size: int
) -> None:
    """Events without enqueued_at/dequeued_at/at get the receipt time as created_at, so two
    concurrent requests carrying them disagree on the partition key; the advisory lock in
    crud/queues.py makes them meet anyway."""
    db = pg_db
    await migrate.upgrade(db)
    events = [
        QueueEvent(
            event_id=f"u{i}",
            queue_name="to_secretary",
            direction=QueueDirection.PUSH,
            message_type="text",
        )
        for i in range(size)
    ]
    results = await asyncio.gather(*(queues_crud.ingest_events(db, events, 4096) for _ in range(6)))
    assert sum(r.inserted for r in results) == size
    assert await scalar(db, "SELECT count(*) FROM queue_message_logs") == size
    assert await scalar(db, "SELECT count(DISTINCT event_id) FROM queue_message_logs") == size
    assert await scalar(db, "SELECT sum(count) FROM queue_message_hourly") == size
