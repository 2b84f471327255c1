"""Cron monitors: declare, pause/resume, check in, and read a monitor's state.

A monitor only stores its schedule and the sweeper's cursor (``next_expected_at``). Runs
are ``job_executions`` rows with ``job_id`` = slug, written through the same idempotent,
order-independent event merge the job tracker's events go through
(``crud.jobs.ingest_events``), so a check-in, a tracked APScheduler run and a miss the
sweeper recorded are one history, and a monitor's state is read from it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from rest_service.core.db import Database, utcnow
from rest_service.core.errors import IllegalTransitionError, NotFoundError
from rest_service.cron_schedule import Schedule
from rest_service.crud import jobs as crud_jobs
from rest_service.models import CronMonitor, JobExecution, JobStatus
from rest_service.monitor_schemas import (
    CheckinIn,
    CheckinResult,
    CheckinStatus,
    MonitorBatchResult,
    MonitorCreate,
    MonitorPublic,
    MonitorSpec,
    MonitorState,
    RunSummary,
)
from rest_service.schemas import JobEvent, JobEventKind

M = CronMonitor.__table__  # type: ignore[attr-defined]
T = JobExecution.__table__  # type: ignore[attr-defined]

#: Fields of a spec that define when runs are expected: changing one moves the cursor.
SCHEDULE_FIELDS = ("cron", "interval_seconds", "timezone")
SPEC_FIELDS = (
    "job_type",
    "cron",
    "interval_seconds",
    "timezone",
    "grace_seconds",
    "max_runtime_seconds",
    "failure_tolerance",
    "owner_service",
)
FAILED_STATUSES = frozenset({JobStatus.FAILED.value, JobStatus.TIMED_OUT.value})
FINISHED_STATUSES = FAILED_STATUSES | {JobStatus.COMPLETED.value}
CHECKIN_KIND = {
    CheckinStatus.IN_PROGRESS: JobEventKind.STARTED,
    CheckinStatus.OK: JobEventKind.COMPLETED,
    CheckinStatus.ERROR: JobEventKind.FAILED,
}


def early_tolerance(grace_seconds: int) -> timedelta:
    """How early (clock skew) a run may start and still count for an expected time."""
    return timedelta(seconds=min(grace_seconds, 30))


async def db_now(db: Database) -> datetime:
    """The database's clock (every rest_service process agrees on it); on the embedded
    SQLite the database runs in this process, so its clock is the host's."""
    if not db.is_postgres:
        return utcnow()
    async with db.session() as session:
        value = await session.scalar(text("SELECT clock_timestamp()"))
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def schedule_of(row: Any) -> Schedule:
    return Schedule.build(row.cron, row.interval_seconds, row.timezone)


def not_found(slug: str) -> NotFoundError:
    return NotFoundError(
        f"monitor {slug!r} not found; create it with PUT /api/v1/monitors/{{slug}}"
    )


def _insert(db: Database) -> Any:
    return pg_insert(M) if db.is_postgres else sqlite_insert(M)


async def get_row(db: Database, slug: str) -> Any:
    async with db.session() as session:
        row = (await session.execute(select(M).where(M.c.slug == slug))).first()
    if row is None:
        raise not_found(slug)
    return row


async def list_rows(db: Database, limit: int = 1000) -> list[Any]:
    async with db.session() as session:
        result = await session.execute(select(M).order_by(M.c.slug).limit(limit))
        return list(result.all())


async def create(db: Database, body: MonitorCreate) -> Any:
    """Create a monitor; 409 when the slug exists (PUT upserts instead)."""
    now = await db_now(db)
    values = _new_values(body.slug, body, now)
    async with db.write_lock(), db.session() as session, session.begin():
        stmt = _insert(db).values(values).on_conflict_do_nothing(index_elements=[M.c.slug])
        result = await session.execute(stmt)
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise IllegalTransitionError(f"monitor {body.slug!r} already exists; PUT updates it")
    return await get_row(db, body.slug)


def _new_values(slug: str, spec: MonitorSpec, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(spec, name) for name in SPEC_FIELDS}
    values.update(
        id=uuid.uuid4(),
        slug=slug,
        enabled=True,
        next_expected_at=spec.schedule().next_after(now),
        created_at=now,
        updated_at=now,
    )
    return values


async def upsert_many(db: Database, items: Sequence[MonitorCreate]) -> MonitorBatchResult:
    """Create or update monitors by slug. Idempotent: the same spec twice changes nothing
    (not even ``updated_at``); a changed schedule restarts the cursor from now; pausing is
    left alone (re-registering a paused job does not resume it)."""
    result = MonitorBatchResult(created=0, updated=0, unchanged=0)
    if not items:
        return result
    now = await db_now(db)
    latest = {item.slug: item for item in items}  # the last spec of a slug wins
    async with db.write_lock(), db.session() as session, session.begin():
        existing_q = select(M).where(M.c.slug.in_(sorted(latest)))
        if db.is_postgres:
            existing_q = existing_q.with_for_update()
        existing = {row.slug: row for row in (await session.execute(existing_q)).all()}
        for slug in sorted(latest):
            spec = latest[slug]
            row = existing.get(slug)
            if row is None:
                stmt = _insert(db).values(_new_values(slug, spec, now))
                # A concurrent registration of the same slug: theirs stands, both equal.
                await session.execute(stmt.on_conflict_do_nothing(index_elements=[M.c.slug]))
                result.created += 1
                continue
            changes = {
                name: getattr(spec, name)
                for name in SPEC_FIELDS
                if getattr(row, name) != getattr(spec, name)
            }
            if not changes:
                result.unchanged += 1
                continue
            if any(name in changes for name in SCHEDULE_FIELDS):
                changes["next_expected_at"] = spec.schedule().next_after(now)
            changes["updated_at"] = now
            await session.execute(update(M).where(M.c.id == row.id).values(**changes))
            result.updated += 1
    return result


async def upsert(db: Database, slug: str, spec: MonitorSpec) -> tuple[Any, bool]:
    res = await upsert_many(db, [MonitorCreate(slug=slug, **spec.model_dump(exclude_none=True))])
    return await get_row(db, slug), res.created == 1


async def set_enabled(db: Database, slug: str, enabled: bool) -> Any:
    """Pause or resume. Resuming expects the next run from now: runs due while paused are
    not reported as missed."""
    row = await get_row(db, slug)
    now = await db_now(db)
    values: dict[str, Any] = {"enabled": enabled, "updated_at": now}
    if enabled and not row.enabled:
        values["next_expected_at"] = schedule_of(row).next_after(now)
    if enabled != row.enabled:
        async with db.write_lock(), db.session() as session, session.begin():
            await session.execute(update(M).where(M.c.id == row.id).values(**values))
    return await get_row(db, slug)


def checkin_run_id(slug: str, check_in_id: str | None) -> str:
    """The run a check-in belongs to: derived from (slug, check_in_id), so a re-sent
    check-in lands on the same row; without a check_in_id every check-in is a new run."""
    if check_in_id is None:
        return "ci-" + uuid.uuid4().hex
    digest = hashlib.sha256(f"{slug}\x00{check_in_id}".encode(), usedforsecurity=False)
    return "ci-" + digest.hexdigest()[:40]


async def checkin(db: Database, slug: str, body: CheckinIn, max_text: int) -> CheckinResult:
    row = await get_row(db, slug)
    now = await db_now(db)
    run_id = checkin_run_id(slug, body.check_in_id)
    async with db.session() as session:
        before = (await session.execute(select(T).where(T.c.run_id == run_id))).first()
    kind = CHECKIN_KIND[body.status]
    duplicate = before is not None and (
        (kind is JobEventKind.STARTED and before.started_at is not None)
        or (kind is not JobEventKind.STARTED and before.finished_at is not None)
    )
    if duplicate and before is not None:
        return CheckinResult(slug=slug, run_id=run_id, status=before.status, duplicate=True)
    common: dict[str, Any] = {
        "run_id": run_id,
        "job_id": slug,
        "job_name": slug,
        "job_type": row.job_type,
        "correlation_id": body.correlation_id,
    }
    message = body.message
    if body.exit_code is not None and body.status is CheckinStatus.ERROR:
        message = f"exit code {body.exit_code}" + (f": {message}" if message else "")
    events = []
    duration_ms = int(body.duration * 1000) if body.duration is not None else None
    no_start = before is None or before.started_at is None
    if kind is not JobEventKind.STARTED and no_start and duration_ms is not None:
        # A finish without a start: the start is known from its duration.
        started = now - timedelta(milliseconds=duration_ms)
        events.append(
            JobEvent(
                event_id=f"{run_id}:started",
                kind=JobEventKind.STARTED,
                at=started,
                **common,
            )
        )
    events.append(
        JobEvent(
            event_id=f"{run_id}:{kind.value}",
            kind=kind,
            at=now,
            duration_ms=duration_ms,
            error=(message or "error") if kind is JobEventKind.FAILED else None,
            result=message if kind is JobEventKind.COMPLETED else None,
            **common,
        )
    )
    await crud_jobs.ingest_events(db, events, max_text)
    async with db.session() as session:
        status = await session.scalar(select(T.c.status).where(T.c.run_id == run_id))
    return CheckinResult(slug=slug, run_id=run_id, status=str(status), duplicate=False)


# --------------------------------------------------------------------------- state


async def recent_runs(db: Database, slug: str, limit: int = 20) -> list[RunSummary]:
    async with db.session() as session:
        result = await session.execute(
            select(T)
            .where(T.c.job_id == slug)
            .order_by(T.c.created_at.desc(), T.c.id.desc())
            .limit(limit)
        )
        return [_summary(r) for r in result.all()]


def _summary(r: Any) -> RunSummary:
    return RunSummary(
        run_id=r.run_id,
        status=r.status,
        created_at=r.created_at,
        started_at=r.started_at,
        finished_at=r.finished_at,
        duration_ms=r.duration_ms,
        correlation_id=r.correlation_id,
        error=(r.error or None) and r.error[:200],
    )


def state_of(row: Any, runs: Sequence[RunSummary], now: datetime) -> MonitorState:
    """paused / missed (latest run missed) / failing (the last ``failure_tolerance``
    finished runs all failed or timed out) / late (an expected run is overdue, within its
    grace) / ok. ``runs`` are newest first."""
    if not row.enabled:
        return MonitorState.PAUSED
    if runs and runs[0].status == JobStatus.MISSED.value:
        return MonitorState.MISSED
    finished = [r.status for r in runs if r.status in FINISHED_STATUSES]
    tolerance = int(row.failure_tolerance)
    if len(finished) >= tolerance and all(s in FAILED_STATUSES for s in finished[:tolerance]):
        return MonitorState.FAILING
    cursor = row.next_expected_at
    if cursor is not None and now > cursor:
        latest = runs[0].created_at if runs else None
        if latest is None or latest < cursor - early_tolerance(int(row.grace_seconds)):
            return MonitorState.LATE
    return MonitorState.OK


def last_checkin(runs: Sequence[RunSummary]) -> RunSummary | None:
    """The newest run that something reported (not a miss recorded for it)."""
    return next((r for r in runs if r.status != JobStatus.MISSED.value), None)


async def public(db: Database, row: Any, now: datetime | None = None) -> MonitorPublic:
    now = now or await db_now(db)
    runs = await recent_runs(db, row.slug, max(10, int(row.failure_tolerance) + 5))
    return MonitorPublic(
        slug=row.slug,
        job_type=row.job_type,
        cron=row.cron,
        interval_seconds=row.interval_seconds,
        timezone=row.timezone,
        schedule_words=schedule_of(row).describe(),
        grace_seconds=row.grace_seconds,
        max_runtime_seconds=row.max_runtime_seconds,
        failure_tolerance=row.failure_tolerance,
        owner_service=row.owner_service,
        enabled=row.enabled,
        state=state_of(row, runs, now),
        next_expected_at=row.next_expected_at,
        last_checkin=last_checkin(runs),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
