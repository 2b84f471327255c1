"""Database tables (SQLModel): history rows, user memory, and the hourly rollups behind stats.

All timestamps are timezone-aware UTC (``UTCDateTime``). Status and direction columns are
plain strings checked by the API layer, not database enums, so adding a status is a code
change rather than an ``ALTER TYPE`` migration on a partitioned table.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from rest_service.core.db import UTCDateTime, utcnow


class JobStatus(StrEnum):
    """A run's state. Order in ``STATUS_RANK`` is what makes batch events order-independent.
    docs/job-lifecycle.md is the table: what sets each status, its metric, alert and card."""

    SCHEDULED = "scheduled"
    MISSED = "missed"
    SKIPPED = "skipped"
    RUNNING = "running"
    TIMED_OUT = "timed_out"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: A run's status only ever moves up this ranking, whatever order events arrive in: a late
#: ``started`` overrides ``missed``/``skipped`` (the run did start), ``failed`` beats
#: ``cancelled`` and ``completed`` so the pessimistic outcome wins if a run reports several,
#: and ``timed_out`` is final: a run that exceeded its max runtime stays ``timed_out`` when it
#: finishes later (its finish time, duration and error are still recorded), as it is in
#: ``cron_jobs_total``. No two statuses share a rank, so any arrival order gives one status.
STATUS_RANK: dict[str, int] = {
    JobStatus.SCHEDULED: 0,
    JobStatus.MISSED: 1,
    JobStatus.SKIPPED: 2,
    JobStatus.RUNNING: 3,
    JobStatus.COMPLETED: 4,
    JobStatus.CANCELLED: 5,
    JobStatus.FAILED: 6,
    JobStatus.TIMED_OUT: 7,
}
TERMINAL_STATUSES = frozenset(
    {
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.MISSED,
        JobStatus.SKIPPED,
    }
)


class QueueDirection(StrEnum):
    PUSH = "push"
    POP = "pop"


class JobExecution(SQLModel, table=True):
    """One run of a cron job, built from its lifecycle events (keyed by ``run_id``)."""

    __tablename__ = "job_executions"
    __table_args__ = (
        # Idempotency key; includes the time axis because Postgres partitions this table by
        # day and a partitioned table's unique keys must contain its partition key
        # (rest_service/partitions.py).
        UniqueConstraint("run_id", "created_at", name="uq_job_executions_run_id_created_at"),
        Index("ix_job_executions_created_at", "created_at"),
        Index("ix_job_executions_job_type_created_at", "job_type", "created_at"),
        Index("ix_job_executions_status_created_at", "status", "created_at"),
        Index("ix_job_executions_user_id_created_at", "user_id", "created_at"),
        Index("ix_job_executions_job_id", "job_id"),
        Index("ix_job_executions_correlation_id", "correlation_id"),
        # Running rows are few; the stuck count scans only them.
        Index(
            "ix_job_executions_running_started_at",
            "started_at",
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    run_id: str = Field(sa_column=Column(String(128), nullable=False))
    job_id: str = Field(sa_column=Column(String(256), nullable=False))
    job_name: str = Field(sa_column=Column(String(256), nullable=False))
    job_type: str = Field(sa_column=Column(String(128), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    scheduled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    duration_ms: int | None = Field(default=None, sa_column=Column(BigInteger()))
    #: Log-scale duration bucket (see ``crud.durations``): lets stats fold the raw edge of a
    #: window into the rollup histogram with a GROUP BY instead of fetching durations.
    duration_bucket: int | None = Field(default=None, sa_column=Column(SmallInteger()))
    user_id: int | None = Field(default=None, sa_column=Column(BigInteger()))
    reminder_id: int | None = Field(default=None, sa_column=Column(BigInteger()))
    correlation_id: str | None = Field(default=None, sa_column=Column(String(128)))
    result: str | None = Field(default=None, sa_column=Column(Text()))
    error: str | None = Field(default=None, sa_column=Column(Text()))
    error_traceback: str | None = Field(default=None, sa_column=Column(Text()))
    #: The earliest event time known for the run (scheduled, else started, else finished):
    #: the time axis for filters, stats, retention and future partitioning.
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class QueueMessageLog(SQLModel, table=True):
    """One push or pop of a Redis queue message (one row per event, keyed by ``event_id``)."""

    __tablename__ = "queue_message_logs"
    __table_args__ = (
        # Idempotency key, with the partition key for the same reason as job_executions.
        UniqueConstraint(
            "event_id", "created_at", name="uq_queue_message_logs_event_id_created_at"
        ),
        Index("ix_queue_message_logs_created_at", "created_at"),
        Index("ix_queue_message_logs_queue_name_created_at", "queue_name", "created_at"),
        Index("ix_queue_message_logs_user_id_created_at", "user_id", "created_at"),
        Index("ix_queue_message_logs_correlation_id", "correlation_id"),
        Index("ix_queue_message_logs_message_id", "message_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    #: event_id, or "message_id:direction" when the shipper sent no event_id (hence 140).
    event_id: str = Field(sa_column=Column(String(140), nullable=False))
    message_id: str | None = Field(default=None, sa_column=Column(String(128)))
    queue_name: str = Field(sa_column=Column(String(128), nullable=False))
    direction: str = Field(sa_column=Column(String(8), nullable=False))
    message_type: str = Field(sa_column=Column(String(64), nullable=False))
    source: str | None = Field(default=None, sa_column=Column(String(64)))
    user_id: int | None = Field(default=None, sa_column=Column(BigInteger()))
    correlation_id: str | None = Field(default=None, sa_column=Column(String(128)))
    payload: str | None = Field(default=None, sa_column=Column(Text()))
    payload_truncated: bool = Field(default=False, nullable=False)
    enqueued_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    dequeued_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    #: Event time: enqueued_at for a push, dequeued_at for a pop, else receipt time.
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class UserMemory(SQLModel, table=True):
    """A fact the assistant remembers about a user."""

    __tablename__ = "user_memories"
    __table_args__ = (Index("ix_user_memories_user_id_created_at", "user_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: int = Field(sa_column=Column(BigInteger(), nullable=False))
    content: str = Field(sa_column=Column(Text(), nullable=False))
    source: str | None = Field(default=None, sa_column=Column(String(64)))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class QueueMessageHourly(SQLModel, table=True):
    """Rollup: queue events per hour, maintained in the same statement as the insert."""

    __tablename__ = "queue_message_hourly"

    hour: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    queue_name: str = Field(sa_column=Column(String(128), primary_key=True))
    direction: str = Field(sa_column=Column(String(8), primary_key=True))
    message_type: str = Field(sa_column=Column(String(64), primary_key=True))
    #: '' stands for "no source" (a primary key column cannot be NULL).
    source: str = Field(sa_column=Column(String(64), primary_key=True))
    count: int = Field(sa_column=Column(BigInteger(), nullable=False))


class JobHourly(SQLModel, table=True):
    """Rollup: runs per hour of ``created_at``, job type and current status."""

    __tablename__ = "job_hourly"

    hour: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    job_type: str = Field(sa_column=Column(String(128), primary_key=True))
    status: str = Field(sa_column=Column(String(16), primary_key=True))
    runs: int = Field(sa_column=Column(BigInteger(), nullable=False))
    duration_count: int = Field(sa_column=Column(BigInteger(), nullable=False))
    duration_sum: int = Field(sa_column=Column(BigInteger(), nullable=False))


class JobDurationHourly(SQLModel, table=True):
    """Rollup: histogram of run durations per hour (log-scale buckets) for the p95."""

    __tablename__ = "job_duration_hourly"

    hour: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    bucket: int = Field(sa_column=Column(SmallInteger(), primary_key=True))
    count: int = Field(sa_column=Column(BigInteger(), nullable=False))


class CronMonitor(SQLModel, table=True):
    """A declared schedule that check-ins are expected against (issue 15, docs/monitors.md).

    ``next_expected_at`` is the sweeper's cursor: the earliest expected run not yet
    accounted for by a run or a recorded miss. Runs themselves live only in
    ``job_executions`` (``job_id`` = slug), whoever wrote them (check-ins, the job tracker,
    the sweeper): one history, and a monitor's state is read from it.
    """

    __tablename__ = "cron_monitors"
    __table_args__ = (Index("ix_cron_monitors_enabled_next", "enabled", "next_expected_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    slug: str = Field(sa_column=Column(String(128), nullable=False, unique=True))
    #: job_type of the history rows this monitor writes (the tracker's type for its jobs).
    job_type: str = Field(sa_column=Column(String(128), nullable=False))
    cron: str | None = Field(default=None, sa_column=Column(String(256)))
    interval_seconds: int | None = Field(default=None, sa_column=Column(BigInteger()))
    timezone: str = Field(sa_column=Column(String(64), nullable=False))
    grace_seconds: int = Field(sa_column=Column(BigInteger(), nullable=False))
    max_runtime_seconds: int | None = Field(default=None, sa_column=Column(BigInteger()))
    #: Consecutive failed (or timed-out) runs before the monitor counts as failing.
    failure_tolerance: int = Field(sa_column=Column(SmallInteger(), nullable=False))
    owner_service: str | None = Field(default=None, sa_column=Column(String(128)))
    enabled: bool = Field(default=True, nullable=False)
    next_expected_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
