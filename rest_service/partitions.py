"""Daily range partitions of the history tables on Postgres: convert, create ahead, drain, drop.

Why partitions: at millions of rows a day, retention by ``DELETE`` writes every deleted row
to the WAL and leaves the table to vacuum, and every stats query walks one growing index.
With one partition per UTC day (``PARTITION BY RANGE (created_at)``) retention is a
``DROP TABLE`` of whole days (metadata only, milliseconds), and a query with a
``created_at`` bound only touches the days it covers (partition pruning, visible in
``EXPLAIN``).

Layout per table ``T`` (``job_executions``, ``queue_message_logs``):
- ``T_pYYYYMMDD``: rows with ``created_at`` in [day, day + 1) UTC;
- ``T_default``: the DEFAULT partition, a safety net for rows whose day has no partition
  yet (a clock far ahead, a backfill of old history). ``maintain`` moves its rows into
  proper partitions, so it stays small.

Idempotency: Postgres requires every unique key of a partitioned table to contain the
partition key, so the keys are ``(run_id, created_at)`` and ``(event_id, created_at)``.
A re-sent event lands in the same partition because ``created_at`` is derived from the
event itself, not from its arrival: a queue event's enqueued_at / dequeued_at / at, a job
run's earliest event time. Ingest still checks the bare key first (crud/queues.py's
``NOT EXISTS`` on event_id, crud/jobs.py's load by run_id under its lock), so a re-send
whose derived time differs (an event without any timestamp falls back to receipt time) is
still recognised; a job run whose earliest time moves is deleted from its old partition
and written to the new one in the same transaction.

SQLite (the embedded default) stays one plain table per history: nothing here runs there.

Every function takes a synchronous SQLAlchemy ``Connection`` so that the Alembic migration
(``op.get_bind()``) and the app (``AsyncConnection.run_sync``) share one implementation.
"""

# SQL here is built from the table names in TABLES and dates formatted by this module,
# never from input: identifiers cannot be bound parameters.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, text

#: The partitioned tables and their time axis.
TABLES: dict[str, str] = {"job_executions": "created_at", "queue_message_logs": "created_at"}
#: Days of partitions kept ready ahead of today (a clock skew or a late maintenance pass
#: must not send a whole day into DEFAULT).
AHEAD_DAYS = 3
#: Rows per statement when copying an unpartitioned table (bounded memory and WAL bursts).
COPY_BATCH = 50_000
#: A partition DROP waits at most this long for the parent's lock, then the pass retries
#: later instead of queueing every reader behind it.
LOCK_TIMEOUT = "5s"


def partition_name(table: str, day: date) -> str:
    # explicit zero padding: strftime's %Y gives "1", not "0001", for year 1 on glibc
    return f"{table}_p{day.year:04d}{day.month:02d}{day.day:02d}"


def unique_name(table: str, key: str) -> str:
    """The idempotency key's constraint (the models declare the same name)."""
    return f"uq_{table}_{key}_created_at"


def is_partition_table(name: str) -> bool:
    """True for a partition of a history table (``..._p20261205``, ``..._default``): schema
    comparisons against the models skip them."""
    for table in TABLES:
        rest = name.removeprefix(f"{table}_")
        if rest != name and (rest == "default" or (rest[:1] == "p" and rest[1:].isdigit())):
            return True
    return False


def default_name(table: str) -> str:
    return f"{table}_default"


def is_partitioned(conn: Connection, table: str) -> bool:
    kind = conn.execute(
        text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
    ).scalar()
    return kind == "p"


def _day_bounds(day: date) -> tuple[datetime, datetime] | None:
    """[day, day + 1) as aware UTC datetimes; None for 9999-12-31 (it has no end: its rows
    stay in DEFAULT)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        return start, start + timedelta(days=1)
    except OverflowError:
        return None


def partitions(conn: Connection, table: str) -> dict[date, str]:
    """The daily partitions of ``table`` that exist, by day (DEFAULT excluded)."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": table},
    ).scalars()
    prefix = f"{table}_p"
    found: dict[date, str] = {}
    for name in rows:
        if name.startswith(prefix) and len(name) == len(prefix) + 8:
            digits = name[len(prefix) :]
            if digits.isdigit():
                found[date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))] = name
    return found


def _create_partition(conn: Connection, table: str, day: date) -> bool:
    bounds = _day_bounds(day)
    if bounds is None:
        return False
    start, end = bounds
    # Rows of this day sitting in DEFAULT would make CREATE ... PARTITION OF fail (the
    # DEFAULT partition's implicit constraint would be violated): move them aside first, in
    # the same transaction, then route them back through the parent into the new partition.
    moving = f"{table}_moving"
    conn.execute(text(f'CREATE TEMP TABLE "{moving}" (LIKE "{table}") ON COMMIT DROP'))
    conn.execute(
        text(
            f'WITH moved AS (DELETE FROM "{default_name(table)}" '
            f"WHERE created_at >= :s AND created_at < :e RETURNING *) "
            f'INSERT INTO "{moving}" SELECT * FROM moved'
        ),
        {"s": start, "e": end},
    )
    conn.execute(
        text(
            f'CREATE TABLE IF NOT EXISTS "{partition_name(table, day)}" PARTITION OF "{table}" '
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    )
    conn.execute(text(f'INSERT INTO "{table}" SELECT * FROM "{moving}"'))
    conn.execute(text(f'DROP TABLE "{moving}"'))
    return True


def ensure_partitions(conn: Connection, table: str, days: Iterable[date]) -> list[str]:
    """Create the missing daily partitions for ``days``; the names created."""
    existing = partitions(conn, table)
    created = []
    for day in sorted(set(days)):
        if day not in existing and _create_partition(conn, table, day):
            created.append(partition_name(table, day))
    return created


def default_days(conn: Connection, table: str) -> list[date]:
    """The UTC days of the rows sitting in ``table``'s DEFAULT partition."""
    rows = conn.execute(
        text(
            f"SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM \"{default_name(table)}\""
        )
    ).scalars()
    return sorted(rows)


@dataclass
class MaintenanceResult:
    created: list[str] = field(default_factory=list)
    drained_days: int = 0


def maintain(conn: Connection, today: date, ahead: int = AHEAD_DAYS) -> MaintenanceResult:
    """One pass: partitions for today .. today + ``ahead``, and DEFAULT drained into
    partitions of their own days (rows whose day has no end, 9999-12-31, stay)."""
    result = MaintenanceResult()
    for table in TABLES:
        if not is_partitioned(conn, table):
            continue
        stray = default_days(conn, table)
        result.drained_days += len(stray)
        wanted = [today + timedelta(days=i) for i in range(ahead + 1)] + stray
        result.created += ensure_partitions(conn, table, wanted)
    return result


@dataclass
class Dropped:
    partitions: list[str] = field(default_factory=list)
    rows: int = 0


def drop_before(conn: Connection, table: str, cutoff: date) -> Dropped:
    """Drop every daily partition that ends on or before ``cutoff`` (a UTC day boundary),
    and delete DEFAULT's rows older than it (few: maintenance drains DEFAULT). Whole days
    only: no row-by-row DELETE of the history. Counts the rows it removes (an index-only
    count per dropped day, for the log line and the caller's totals)."""
    conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    result = Dropped()
    for day, name in sorted(partitions(conn, table).items()):
        if day + timedelta(days=1) <= cutoff:
            result.rows += int(conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar() or 0)
            conn.execute(text(f'DROP TABLE "{name}"'))
            result.partitions.append(name)
    deleted = conn.execute(
        text(f'DELETE FROM "{default_name(table)}" WHERE created_at < :c'),
        {"c": datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC)},
    )
    result.rows += int(deleted.rowcount or 0)
    return result


# --------------------------------------------------------------------------- conversion


def _columns(conn: Connection, table: str) -> list[str]:
    return list(
        conn.execute(
            text(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t) "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            {"t": table},
        ).scalars()
    )


def create_partitioned_copy(conn: Connection, table: str, key: str) -> str:
    """``<table>_partitioned``: same columns, ``PARTITION BY RANGE (created_at)``, primary
    key (id, created_at), unique (key, created_at), a DEFAULT partition, and daily
    partitions for every day present in ``table`` plus the days ahead. Idempotent."""
    new = f"{table}_partitioned"
    conn.execute(
        text(
            f'CREATE TABLE IF NOT EXISTS "{new}" (LIKE "{table}" INCLUDING DEFAULTS, '
            f'CONSTRAINT "{new}_pkey" PRIMARY KEY (id, created_at), '
            f'CONSTRAINT "{unique_name(table, key)}" UNIQUE ({key}, created_at)) '
            "PARTITION BY RANGE (created_at)"
        )
    )
    conn.execute(text(f'CREATE TABLE IF NOT EXISTS "{new}_default" PARTITION OF "{new}" DEFAULT'))
    days = conn.execute(
        text(f"SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM \"{table}\"")
    ).scalars()
    today = datetime.now(UTC).date()
    wanted = set(days) | {today + timedelta(days=i) for i in range(AHEAD_DAYS + 1)}
    existing = partitions(conn, new)
    for day in sorted(wanted - set(existing)):
        bounds = _day_bounds(day)
        if bounds is None:
            continue
        start, end = bounds
        conn.execute(
            text(
                f'CREATE TABLE IF NOT EXISTS "{partition_name(new, day)}" PARTITION OF "{new}" '
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
        )
    return new


def copy_batches(
    conn: Connection, table: str, new: str, batch: int = COPY_BATCH, max_batches: int | None = None
) -> int:
    """Copy rows of ``table`` into ``new`` in keyset order (created_at, id), ``batch`` rows
    per statement, resuming after the last row already in ``new``. Returns rows copied.

    ``max_batches`` stops early (what an interrupted run leaves behind; tests use it)."""
    cols = ", ".join(f'"{c}"' for c in _columns(conn, table))
    copied = 0
    done = 0
    while max_batches is None or done < max_batches:
        last = conn.execute(
            text(f'SELECT created_at, id FROM "{new}" ORDER BY created_at DESC, id DESC LIMIT 1')
        ).first()
        where = "WHERE (created_at, id) > (:c, :i)" if last is not None else ""
        params = {"c": last[0], "i": last[1]} if last is not None else {}
        result = conn.execute(
            text(
                f'INSERT INTO "{new}" ({cols}) SELECT {cols} FROM "{table}" {where} '
                f"ORDER BY created_at, id LIMIT {int(batch)} ON CONFLICT DO NOTHING"
            ),
            params,
        )
        n = int(result.rowcount or 0)
        copied += n
        done += 1
        if n < batch:
            break
    return copied


def reconcile_and_swap(conn: Connection, table: str, new: str, changed_col: str | None) -> None:
    """The swap, in the caller's transaction, with ``table`` locked against writers:
    bring ``new`` level with ``table`` (rows deleted, changed or added since the batched
    copy), check both hold the same rows, drop the old table and give ``new`` its name.

    ``changed_col`` (updated_at for job runs, which are updated in place) detects rows that
    changed after they were copied; queue message logs are insert-only."""
    conn.execute(text(f'LOCK TABLE "{table}" IN EXCLUSIVE MODE'))
    cols = ", ".join(f'"{c}"' for c in _columns(conn, table))
    same = "o.id = n.id AND o.created_at = n.created_at"
    if changed_col:
        same += f' AND o."{changed_col}" = n."{changed_col}"'
    conn.execute(
        text(f'DELETE FROM "{new}" n WHERE NOT EXISTS (SELECT 1 FROM "{table}" o WHERE {same})')
    )
    conn.execute(
        text(
            f'INSERT INTO "{new}" ({cols}) SELECT {cols} FROM "{table}" o '
            f'WHERE NOT EXISTS (SELECT 1 FROM "{new}" n WHERE {same})'
        )
    )
    old_n = conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar()
    new_n = conn.execute(text(f'SELECT count(*) FROM "{new}"')).scalar()
    if old_n != new_n:
        raise RuntimeError(f"{table}: {old_n} rows, partitioned copy has {new_n}; not swapped")
    conn.execute(text(f'DROP TABLE "{table}"'))
    conn.execute(text(f'ALTER TABLE "{new}" RENAME TO "{table}"'))
    conn.execute(text(f'ALTER TABLE "{table}" RENAME CONSTRAINT "{new}_pkey" TO "{table}_pkey"'))
    for child in conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": table},
    ).scalars():
        if child.startswith(new):
            conn.execute(text(f'ALTER TABLE "{child}" RENAME TO "{table}{child[len(new) :]}"'))
