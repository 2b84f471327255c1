"""partition history by day on Postgres; idempotency keys include the time axis

Revision ID: 0003
Revises: 0002_cron_monitors
Create Date: 2026-12-05 19:10:00

Postgres: job_executions and queue_message_logs become ``PARTITION BY RANGE (created_at)``
tables with one partition per UTC day and a DEFAULT partition (rest_service/partitions.py
explains the layout and how idempotency keeps working). An existing, unpartitioned table is
converted in place: a partitioned copy is filled in keyset batches of 50,000 rows (resuming
after the rows a previous, interrupted run already copied), then, with the old table locked
against writers, brought level (rows changed, added or deleted meanwhile), counted, and
swapped in. Alembic runs this in one transaction: an interruption leaves the old table as it
was, and a re-run starts again (or continues from a committed partial copy, e.g. one made by
``partitions.copy_batches`` outside Alembic).

SQLite (the embedded default) stays plain: only the unique keys change to (run_id,
created_at) and (event_id, created_at), so both dialects have the same conflict targets.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from rest_service import partitions

revision: str = "0003"
down_revision: str | None = "0002_cron_monitors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: table -> (idempotency key, column that changes when a row is updated in place)
HISTORY: dict[str, tuple[str, str | None]] = {
    "job_executions": ("run_id", "updated_at"),
    "queue_message_logs": ("event_id", None),
}

#: The secondary indexes of 0001, recreated on the partitioned parents (Postgres cascades
#: an index on a partitioned table to every partition, present and future).
INDEXES: dict[str, list[tuple[str, list[str], str | None]]] = {
    "job_executions": [
        ("ix_job_executions_correlation_id", ["correlation_id"], None),
        ("ix_job_executions_created_at", ["created_at"], None),
        ("ix_job_executions_job_id", ["job_id"], None),
        ("ix_job_executions_job_type_created_at", ["job_type", "created_at"], None),
        ("ix_job_executions_running_started_at", ["started_at"], "status = 'running'"),
        ("ix_job_executions_status_created_at", ["status", "created_at"], None),
        ("ix_job_executions_user_id_created_at", ["user_id", "created_at"], None),
    ],
    "queue_message_logs": [
        ("ix_queue_message_logs_correlation_id", ["correlation_id"], None),
        ("ix_queue_message_logs_created_at", ["created_at"], None),
        ("ix_queue_message_logs_message_id", ["message_id"], None),
        ("ix_queue_message_logs_queue_name_created_at", ["queue_name", "created_at"], None),
        ("ix_queue_message_logs_user_id_created_at", ["user_id", "created_at"], None),
    ],
}

#: SQLite's unique constraints of 0001 are unnamed; this convention names them for batch mode.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _create_indexes(table: str) -> None:
    for name, cols, where in INDEXES[table]:
        op.create_index(
            name,
            table,
            cols,
            postgresql_where=sa.text(where) if where else None,
        )


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        for table, (key, _) in HISTORY.items():
            with op.batch_alter_table(table, naming_convention=NAMING) as batch:
                batch.drop_constraint(f"uq_{table}_{key}", type_="unique")
                batch.create_unique_constraint(
                    partitions.unique_name(table, key), [key, "created_at"]
                )
        return
    for table, (key, changed) in HISTORY.items():
        if partitions.is_partitioned(conn, table):
            continue
        new = partitions.create_partitioned_copy(conn, table, key)
        partitions.copy_batches(conn, table, new)
        partitions.reconcile_and_swap(conn, table, new, changed)
        _create_indexes(table)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        for table, (key, _) in HISTORY.items():
            with op.batch_alter_table(table) as batch:
                batch.drop_constraint(partitions.unique_name(table, key), type_="unique")
                batch.create_unique_constraint(f"uq_{table}_{key}", [key])
        return
    for table, (key, _) in HISTORY.items():
        if not partitions.is_partitioned(conn, table):
            continue
        plain = f"{table}_plain"
        op.execute(f'CREATE TABLE "{plain}" (LIKE "{table}" INCLUDING DEFAULTS)')
        op.execute(f'INSERT INTO "{plain}" SELECT * FROM "{table}"')  # noqa: S608
        op.execute(f'DROP TABLE "{table}" CASCADE')  # the parent and all its partitions
        op.execute(f'ALTER TABLE "{plain}" RENAME TO "{table}"')
        op.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_pkey" PRIMARY KEY (id)')
        op.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_{key}_key" UNIQUE ({key})')
        _create_indexes(table)
