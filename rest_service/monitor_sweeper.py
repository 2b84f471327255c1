"""The cron monitor sweeper: server-side detection of missed and timed-out runs.

Every ``MONITOR_SWEEP_INTERVAL_SECONDS`` each rest_service process:

1. reads the database's clock (so replicas with skewed clocks agree);
2. for each enabled monitor whose cursor (``next_expected_at``) is past its grace period:
   if a run of the monitor (any ``job_executions`` row with ``job_id`` = slug: a check-in,
   a tracked APScheduler run, a miss already recorded) started within
   [expected - early tolerance, expected + grace], the expected run happened; otherwise a
   ``missed`` run is recorded with a run id derived from (slug, expected time), so however
   many sweepers see it, it is one row. Then the cursor moves to the next expected time;
3. marks runs still ``running`` past the monitor's ``max_runtime_seconds`` as ``timed_out``
   (a later ``ok`` check-in still moves them on to completed);
4. sets ``cron_monitor_status`` and ``cron_monitor_last_checkin_timestamp_seconds``.

Several processes on one Postgres: each monitor is swept under ``SELECT ... FOR UPDATE
SKIP LOCKED`` on its row, so one process handles it while the others skip it, and the
cursor moves in the same transaction that held the lock. A sweeper killed mid-sweep leaves
at most a recorded miss whose cursor did not move; the next sweep finds that row, counts
the expected run as accounted for and moves on (no duplicate). On SQLite (one process) the
cursor moves with a compare-and-set instead.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select, update

from otel_assist.metrics import instruments as metrics
from rest_service.core.config import Settings
from rest_service.core.db import Database
from rest_service.crud import jobs as crud_jobs
from rest_service.crud import monitors as crud
from rest_service.models import JobStatus
from rest_service.monitor_schemas import STATE_VALUE, MonitorState
from rest_service.schemas import JobEvent, JobEventKind

log = structlog.get_logger("rest_service.monitors")

M = crud.M
T = crud.T
OTHER = metrics.OTHER


@dataclass(frozen=True)
class SweeperSettings:
    """``MONITOR_*`` settings (built by create_app from its Settings; tests pass their own)."""

    enabled: bool = True
    interval_s: float = 15.0
    #: Monitors with their own ``monitor`` series; the rest are folded into ``_other``.
    metric_limit: int = 100
    #: Missed runs recorded per monitor and sweep; a monitor further behind (rest_service
    #: was down for a long time) skips ahead to now, with a warning.
    max_catchup: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> SweeperSettings:
        """From rest_service's one settings object (``MONITOR_*`` there)."""
        return cls(
            enabled=settings.monitor_sweep_enabled,
            interval_s=settings.monitor_sweep_interval_seconds,
            metric_limit=settings.monitor_metric_limit,
        )


@dataclass
class SweepResult:
    monitors: int = 0
    missed: int = 0
    timed_out: int = 0


def missed_run_id(slug: str, expected: datetime) -> str:
    """One run id per (monitor, expected time): the idempotency key of a miss."""
    key = f"{slug}\x00{expected.isoformat()}".encode()
    return "monitor-missed-" + hashlib.sha256(key, usedforsecurity=False).hexdigest()[:40]


@dataclass
class Plan:
    cursor: datetime | None
    events: list[JobEvent]
    missed: int = 0
    timed_out: int = 0


async def plan_sweep(session: Any, row: Any, now: datetime, max_catchup: int) -> Plan:
    """What one sweep of one monitor writes: misses, timeouts and the new cursor."""
    schedule = crud.schedule_of(row)
    grace = timedelta(seconds=int(row.grace_seconds))
    tol = crud.early_tolerance(int(row.grace_seconds))
    cursor: datetime | None = row.next_expected_at or schedule.next_after(now)
    plan = Plan(cursor=cursor, events=[])
    common = {"job_id": row.slug, "job_name": row.slug, "job_type": row.job_type}
    if cursor is not None and cursor + grace <= now:
        result = await session.execute(
            select(T.c.created_at)
            .where(T.c.job_id == row.slug, T.c.created_at >= cursor - tol)
            .order_by(T.c.created_at)
            .limit(10_000)
        )
        starts = [r.created_at for r in result.all()]
        steps = 0
        while cursor is not None and cursor + grace <= now and steps < max_catchup:
            window = [t for t in starts if cursor - tol <= t <= cursor + grace]
            base = cursor
            if not window:
                run_id = missed_run_id(row.slug, cursor)
                for kind in (JobEventKind.SCHEDULED, JobEventKind.MISSED):
                    plan.events.append(
                        JobEvent(
                            event_id=f"{run_id}:{kind.value}",
                            run_id=run_id,
                            kind=kind,
                            at=cursor,
                            error=None,
                            **common,
                        )
                    )
                plan.missed += 1
            elif schedule.interval_seconds is not None:
                base = max(window)  # an interval counts from the run that happened
            cursor = schedule.next_after(base)
            steps += 1
        if cursor is not None and cursor + grace <= now:
            log.warning(
                "monitor far behind its schedule; skipping ahead",
                event_type="monitor_sweep",
                monitor=row.slug,
                recorded=plan.missed,
            )
            cursor = schedule.next_after(now - grace)
        plan.cursor = cursor
    if row.max_runtime_seconds:
        limit = now - timedelta(seconds=int(row.max_runtime_seconds))
        stuck = await session.execute(
            select(T.c.run_id, T.c.job_name, T.c.job_type, T.c.started_at)
            .where(
                T.c.job_id == row.slug,
                T.c.status == JobStatus.RUNNING.value,
                T.c.started_at <= limit,
            )
            .limit(1000)
        )
        for r in stuck.all():
            plan.events.append(
                JobEvent(
                    event_id=f"{r.run_id}:timed_out",
                    run_id=r.run_id,
                    job_id=row.slug,
                    job_name=r.job_name,
                    job_type=r.job_type,
                    kind=JobEventKind.TIMED_OUT,
                    at=now,
                )
            )
            plan.timed_out += 1
    return plan


async def sweep_monitor(
    db: Database, monitor_id: Any, now: datetime, max_text: int, max_catchup: int
) -> Plan | None:
    """Sweep one monitor; None when another process holds it or it is paused."""
    if db.is_postgres:
        async with db.session() as session, session.begin():
            row = (
                await session.execute(
                    select(M)
                    .where(M.c.id == monitor_id, M.c.enabled.is_(True))
                    .with_for_update(skip_locked=True)
                )
            ).first()
            if row is None:
                return None
            plan = await plan_sweep(session, row, now, max_catchup)
            if plan.events:
                await crud_jobs.ingest_events(db, plan.events, max_text)
            if plan.cursor != row.next_expected_at:
                await session.execute(
                    update(M).where(M.c.id == row.id).values(next_expected_at=plan.cursor)
                )
        return plan
    async with db.session() as session:
        row = (
            await session.execute(select(M).where(M.c.id == monitor_id, M.c.enabled.is_(True)))
        ).first()
        if row is None:
            return None
        plan = await plan_sweep(session, row, now, max_catchup)
    if plan.events:
        await crud_jobs.ingest_events(db, plan.events, max_text)
    if plan.cursor != row.next_expected_at:
        async with db.write_lock(), db.session() as session, session.begin():
            await session.execute(
                update(M)
                .where(M.c.id == row.id, M.c.next_expected_at == row.next_expected_at)
                .values(next_expected_at=plan.cursor)
            )
    return plan


async def sweep_once(
    db: Database, max_text: int, max_catchup: int = 100, now: datetime | None = None
) -> SweepResult:
    """One pass over the monitors that are due (overdue cursor or a max runtime set)."""
    now = now or await crud.db_now(db)
    async with db.session() as session:
        due = await session.execute(
            select(M.c.id, M.c.slug)
            .where(
                M.c.enabled.is_(True),
                (M.c.next_expected_at <= now) | M.c.max_runtime_seconds.is_not(None),
            )
            .order_by(M.c.slug)
        )
        ids = [(r.id, r.slug) for r in due.all()]
    result = SweepResult()
    for monitor_id, slug in ids:
        try:
            plan = await sweep_monitor(db, monitor_id, now, max_text, max_catchup)
        except Exception as exc:  # one broken monitor must not stop the others
            log.warning(
                "monitor sweep failed", event_type="monitor_sweep", monitor=slug, error=repr(exc)
            )
            continue
        if plan is None:
            continue
        result.monitors += 1
        result.missed += plan.missed
        result.timed_out += plan.timed_out
        if plan.missed or plan.timed_out:
            log.warning(
                "monitor runs missed or timed out",
                event_type="monitor_sweep",
                monitor=slug,
                missed=plan.missed,
                timed_out=plan.timed_out,
            )
    return result


def fold_states(
    states: Sequence[tuple[str, MonitorState, float | None]], limit: int
) -> dict[str, tuple[int, float | None]]:
    """Gauge values per ``monitor`` attribute: the first ``limit`` slugs (sorted) as
    themselves, the rest as ``_other`` with the worst state and the latest check-in."""
    out: dict[str, tuple[int, float | None]] = {}
    for index, (slug, state, last) in enumerate(sorted(states)):
        name = slug if index < limit else OTHER
        value = STATE_VALUE[state]
        if name in out:
            old_value, old_last = out[name]
            value = max(value, old_value)
            last = max((x for x in (last, old_last) if x is not None), default=None)
        out[name] = (value, last)
    return out


async def update_metrics(db: Database, limit: int) -> dict[str, tuple[int, float | None]]:
    now = await crud.db_now(db)
    states = []
    for row in await crud.list_rows(db, limit=10_000):
        public = await crud.public(db, row, now)
        run = public.last_checkin
        states.append((row.slug, public.state, run.created_at.timestamp() if run else None))
    folded = fold_states(states, limit)
    cat = metrics.catalog()
    for name, (value, last) in folded.items():
        cat["cron_monitor_status"].set(value, monitor=name)
        if last is not None:
            cat["cron_monitor_last_checkin_timestamp"].set(last, monitor=name)
    return folded


async def run_forever(db: Database, settings: SweeperSettings, max_text: int) -> None:
    """The background task create_app starts: sweep, publish metrics, sleep, repeat."""
    while True:
        try:
            await sweep_once(db, max_text, settings.max_catchup)
            await update_metrics(db, settings.metric_limit)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be down; try again next interval
            log.warning("monitor sweep failed", event_type="monitor_sweep", error=repr(exc))
        await asyncio.sleep(settings.interval_s)
