"""Job executions: order-independent event merging, lifecycle calls, listing and stats.

Write path: every change to a run goes through ``_write_states``, which upserts the rows
(INSERT ... ON CONFLICT (run_id) DO UPDATE) and applies the difference between the old and
new row to the hourly rollups in the same transaction. Job writes are serialised (an
advisory lock on Postgres, an asyncio lock on SQLite) because the rollup delta needs the
row's previous state; job volume is low enough that this costs nothing measurable.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, and_, func, literal, select, text, union_all
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from rest_service.core.db import Database, utcnow
from rest_service.core.errors import IllegalTransitionError, NotFoundError
from rest_service.crud.text import truncate_text
from rest_service.crud.windows import (
    WindowSplit,
    duration_bucket,
    histogram_quantile,
    hour_floor,
    interpolate_cont,
    split_window,
)
from rest_service.models import (
    STATUS_RANK,
    JobDurationHourly,
    JobExecution,
    JobHourly,
    JobStatus,
)
from rest_service.schemas import (
    JobComplete,
    JobEvent,
    JobEventBatchResult,
    JobEventKind,
    JobExecutionCreate,
    JobFail,
    JobStart,
    JobStats,
    JobTypeStats,
)

JOB_LOCK_KEY = 0x72_65_73_74_6A_6F_62  # "restjob": serialises job writes on Postgres

T = JobExecution.__table__  # type: ignore[attr-defined]
H = JobHourly.__table__  # type: ignore[attr-defined]
D = JobDurationHourly.__table__  # type: ignore[attr-defined]

KIND_STATUS: dict[JobEventKind, JobStatus] = {
    JobEventKind.SCHEDULED: JobStatus.SCHEDULED,
    JobEventKind.STARTED: JobStatus.RUNNING,
    JobEventKind.COMPLETED: JobStatus.COMPLETED,
    JobEventKind.FAILED: JobStatus.FAILED,
    JobEventKind.MISSED: JobStatus.MISSED,
    JobEventKind.SKIPPED: JobStatus.SKIPPED,
    JobEventKind.TIMED_OUT: JobStatus.TIMED_OUT,
    JobEventKind.CANCELLED: JobStatus.CANCELLED,
}
#: Events that end a run that started: they carry its finish time and duration.
FINISHING_KINDS = frozenset({JobEventKind.COMPLETED, JobEventKind.FAILED, JobEventKind.CANCELLED})

State = dict[str, Any]


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _as_utc(ts: datetime) -> datetime:
    from datetime import UTC

    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def merge_event(state: State | None, ev: JobEvent, max_text: int) -> State:
    """Fold one event into a run's state. Commutative and idempotent in every field that
    matters, so any arrival order and any number of re-sends give the same row."""
    at = _as_utc(ev.at)
    if state is None:
        state = {
            "id": uuid.uuid4(),
            "run_id": ev.run_id,
            "job_id": ev.job_id,
            "job_name": ev.job_name or ev.job_id,
            "job_type": ev.job_type,
            "status": JobStatus.SCHEDULED.value,
            "scheduled_at": None,
            "started_at": None,
            "finished_at": None,
            "duration_ms": None,
            "duration_bucket": None,
            "user_id": None,
            "reminder_id": None,
            "correlation_id": None,
            "result": None,
            "error": None,
            "error_traceback": None,
            "created_at": at,
            "updated_at": at,
        }
    else:
        state = dict(state)
    if not state.get("job_name") and ev.job_name:
        state["job_name"] = ev.job_name
    for key in ("user_id", "reminder_id", "correlation_id"):
        if state.get(key) is None and getattr(ev, key) is not None:
            state[key] = getattr(ev, key)
    kind = ev.kind
    if kind is JobEventKind.SCHEDULED:
        state["scheduled_at"] = _min(state["scheduled_at"], at)
    elif kind is JobEventKind.STARTED:
        state["started_at"] = _min(state["started_at"], at)
    elif kind in FINISHING_KINDS:
        state["finished_at"] = _min(state["finished_at"], at)
        if ev.duration_ms is not None:
            state["duration_ms"] = ev.duration_ms
    if kind in (JobEventKind.FAILED, JobEventKind.CANCELLED):
        if state.get("error") is None and (ev.error or kind is JobEventKind.FAILED):
            state["error"] = truncate_text(ev.error or "failed", max_text)[0]
        if state.get("error_traceback") is None and ev.traceback:
            state["error_traceback"] = truncate_text(ev.traceback, max_text)[0]
    if kind is JobEventKind.COMPLETED and state.get("result") is None and ev.result:
        state["result"] = truncate_text(ev.result, max_text)[0]
    new_status = KIND_STATUS[kind]
    if STATUS_RANK[new_status] > STATUS_RANK[state["status"]]:
        state["status"] = new_status.value
    state["created_at"] = _min(state["created_at"], at)
    return state


def _finalize(state: State, now: datetime) -> State:
    if state["duration_ms"] is None and state["started_at"] and state["finished_at"]:
        delta = state["finished_at"] - state["started_at"]
        state["duration_ms"] = max(0, int(delta.total_seconds() * 1000))
    state["duration_bucket"] = duration_bucket(state["duration_ms"])
    state["updated_at"] = now
    return state


def _row_to_state(row: Any) -> State:
    return {c.name: getattr(row, c.name) for c in T.columns}


async def _lock(db: Database, session: AsyncSession) -> None:
    if db.is_postgres:
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": JOB_LOCK_KEY})


def _insert(db: Database, table: Any) -> Any:
    return pg_insert(table) if db.is_postgres else sqlite_insert(table)


def _contributions(
    state: State | None, sign: int, hourly: dict[tuple[Any, ...], list[int]], hist: dict[Any, int]
) -> None:
    if state is None:
        return
    hour = hour_floor(state["created_at"])
    key = (hour, state["job_type"], state["status"])
    acc = hourly.setdefault(key, [0, 0, 0])
    acc[0] += sign
    if state["duration_ms"] is not None:
        acc[1] += sign
        acc[2] += sign * int(state["duration_ms"])
        hkey = (hour, state["duration_bucket"])
        hist[hkey] = hist.get(hkey, 0) + sign


async def _write_states(
    db: Database, session: AsyncSession, old: dict[str, State], new: dict[str, State]
) -> None:
    """Upsert the new rows and move the rollups by (new - old) in the caller's transaction."""
    if not new:
        return
    # The unique key is (run_id, created_at) (history is partitioned by created_at on
    # Postgres): a run whose earliest time moved leaves its old row (and partition) first.
    for run_id, state in new.items():
        before = old.get(run_id)
        if before is not None and before["created_at"] != state["created_at"]:
            await session.execute(
                T.delete().where(T.c.run_id == run_id, T.c.created_at == before["created_at"])
            )
    rows = list(new.values())
    for chunk in _chunks(rows, 500):
        stmt = _insert(db, T).values(list(chunk))
        update_cols = {c.name: stmt.excluded[c.name] for c in T.columns if c.name != "id"}
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[T.c.run_id, T.c.created_at], set_=update_cols
            )
        )
    hourly: dict[tuple[Any, ...], list[int]] = {}
    hist: dict[Any, int] = {}
    for run_id, state in new.items():
        _contributions(old.get(run_id), -1, hourly, hist)
        _contributions(state, +1, hourly, hist)
    h_rows = [
        {
            "hour": k[0],
            "job_type": k[1],
            "status": k[2],
            "runs": v[0],
            "duration_count": v[1],
            "duration_sum": v[2],
        }
        for k, v in sorted(hourly.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2]))
        if any(v)
    ]
    if h_rows:
        ins = _insert(db, H)
        await session.execute(
            ins.values(h_rows).on_conflict_do_update(
                index_elements=[H.c.hour, H.c.job_type, H.c.status],
                set_={
                    "runs": H.c.runs + ins.excluded.runs,
                    "duration_count": H.c.duration_count + ins.excluded.duration_count,
                    "duration_sum": H.c.duration_sum + ins.excluded.duration_sum,
                },
            )
        )
        if any(r["runs"] < 0 for r in h_rows):
            await session.execute(H.delete().where(H.c.runs <= 0))
    d_rows = [
        {"hour": k[0], "bucket": k[1], "count": v}
        for k, v in sorted(hist.items(), key=lambda kv: (kv[0][0], kv[0][1]))
        if v
    ]
    if d_rows:
        ins = _insert(db, D)
        await session.execute(
            ins.values(d_rows).on_conflict_do_update(
                index_elements=[D.c.hour, D.c.bucket],
                set_={"count": D.c.count + ins.excluded.count},
            )
        )
        if any(r["count"] < 0 for r in d_rows):
            await session.execute(D.delete().where(D.c.count <= 0))


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def _load(session: AsyncSession, run_ids: Sequence[str]) -> dict[str, State]:
    found: dict[str, State] = {}
    for chunk in _chunks(list(run_ids), 500):
        result = await session.execute(select(T).where(T.c.run_id.in_(chunk)))
        for row in result:
            found[row.run_id] = _row_to_state(row)
    return found


async def ingest_events(
    db: Database, events: Sequence[JobEvent], max_text: int
) -> JobEventBatchResult:
    """Apply a batch of lifecycle events. Re-sent and out-of-order events are harmless."""
    if not events:
        return JobEventBatchResult(received=0, runs=0)
    now = utcnow()
    async with db.write_lock(), db.session() as session, session.begin():
        await _lock(db, session)
        run_ids = sorted({e.run_id for e in events})
        old = await _load(session, run_ids)
        states: dict[str, State | None] = {rid: old.get(rid) for rid in run_ids}
        for ev in sorted(events, key=lambda e: (_as_utc(e.at), e.event_id)):
            states[ev.run_id] = merge_event(states[ev.run_id], ev, max_text)
        new = {rid: _finalize(s, now) for rid, s in states.items() if s is not None}
        await _write_states(db, session, old, new)
    return JobEventBatchResult(received=len(events), runs=len(run_ids))


# --------------------------------------------------------------------------- lifecycle API


async def create_execution(db: Database, body: JobExecutionCreate) -> JobExecution:
    now = utcnow()
    row_id = uuid.uuid4()
    at = _as_utc(body.scheduled_at) if body.scheduled_at else now
    state: State = {
        "id": row_id,
        "run_id": body.run_id or str(row_id),
        "job_id": body.job_id,
        "job_name": body.job_name or body.job_id,
        "job_type": body.job_type,
        "status": JobStatus.SCHEDULED.value,
        "scheduled_at": at,
        "started_at": None,
        "finished_at": None,
        "duration_ms": None,
        "duration_bucket": None,
        "user_id": body.user_id,
        "reminder_id": body.reminder_id,
        "correlation_id": body.correlation_id,
        "result": None,
        "error": None,
        "error_traceback": None,
        "created_at": at,
        "updated_at": now,
    }
    async with db.write_lock(), db.session() as session, session.begin():
        await _lock(db, session)
        existing = await _load(session, [state["run_id"]])
        if existing:
            raise IllegalTransitionError(f"run_id {state['run_id']!r} already exists")
        await _write_states(db, session, {}, {state["run_id"]: state})
    return JobExecution(**state)


#: Which statuses each lifecycle call may start from.
ALLOWED_FROM: dict[str, frozenset[str]] = {
    "start": frozenset({JobStatus.SCHEDULED, JobStatus.MISSED}),
    "complete": frozenset({JobStatus.RUNNING, JobStatus.TIMED_OUT}),
    "fail": frozenset({JobStatus.RUNNING, JobStatus.TIMED_OUT}),
}


async def transition(
    db: Database,
    execution_id: uuid.UUID,
    action: str,
    body: JobStart | JobComplete | JobFail,
    max_text: int,
) -> JobExecution:
    """start / complete / fail one run, strictly: an illegal transition is an error (409)."""
    now = utcnow()
    at = _as_utc(body.at) if body.at else now
    async with db.write_lock(), db.session() as session, session.begin():
        await _lock(db, session)
        result = await session.execute(select(T).where(T.c.id == execution_id))
        row = result.first()
        if row is None:
            raise NotFoundError(f"job execution {execution_id} not found")
        old = _row_to_state(row)
        status = old["status"]
        if status not in ALLOWED_FROM[action]:
            hint = " (it has not started)" if status == JobStatus.SCHEDULED else ""
            raise IllegalTransitionError(
                f"cannot {action} a run in status {status!r}{hint}; allowed from: "
                + ", ".join(sorted(ALLOWED_FROM[action]))
            )
        new = dict(old)
        if action == "start":
            new["status"] = JobStatus.RUNNING.value
            new["started_at"] = at
        else:
            if new["started_at"] and at < new["started_at"]:
                raise IllegalTransitionError("finish time is before the start time")
            new["finished_at"] = at
            duration = getattr(body, "duration_ms", None)
            if duration is None and new["started_at"]:
                duration = max(0, int((at - new["started_at"]).total_seconds() * 1000))
            new["duration_ms"] = duration
            # A timed-out run keeps its status when it finishes (see STATUS_RANK).
            keep = old["status"] == JobStatus.TIMED_OUT
            if isinstance(body, JobFail):
                new["status"] = JobStatus.TIMED_OUT.value if keep else JobStatus.FAILED.value
                new["error"] = truncate_text(body.error, max_text)[0]
                new["error_traceback"] = (
                    truncate_text(body.traceback, max_text)[0] if body.traceback else None
                )
            else:
                new["status"] = JobStatus.TIMED_OUT.value if keep else JobStatus.COMPLETED.value
                result_text = getattr(body, "result", None)
                new["result"] = truncate_text(result_text, max_text)[0] if result_text else None
        new["created_at"] = _min(new["created_at"], at) or at
        new = _finalize(new, now)
        await _write_states(db, session, {old["run_id"]: old}, {old["run_id"]: new})
    return JobExecution(**new)


# --------------------------------------------------------------------------- reads


async def get_execution(db: Database, execution_id: uuid.UUID) -> JobExecution:
    async with db.session() as session:
        row = await session.get(JobExecution, execution_id)
    if row is None:
        raise NotFoundError(f"job execution {execution_id} not found")
    return row


async def list_executions(
    db: Database,
    *,
    since: datetime,
    job_type: str | None = None,
    status: str | None = None,
    user_id: int | None = None,
    correlation_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[JobExecution]:
    """Newest first; ties broken by id so pages never overlap or skip."""
    stmt = select(JobExecution).where(T.c.created_at >= since)
    if job_type is not None:
        stmt = stmt.where(T.c.job_type == job_type)
    if status is not None:
        stmt = stmt.where(T.c.status == status)
    if user_id is not None:
        stmt = stmt.where(T.c.user_id == user_id)
    if correlation_id is not None:
        stmt = stmt.where(T.c.correlation_id == correlation_id)
    stmt = stmt.order_by(T.c.created_at.desc(), T.c.id.desc()).offset(offset).limit(limit)
    async with db.session() as session:
        return list((await session.execute(stmt)).scalars().all())


async def job_stats(
    db: Database,
    *,
    hours: int,
    stuck_after_minutes: int,
    exact_percentile_limit: int,
    now: datetime | None = None,
    types_limit: int = 100,
) -> JobStats:
    """Counts, average and p95 duration, per type with failures/missed/stuck, in SQL.

    Whole hours come from ``job_hourly``/``job_duration_hourly``; the raw table (through
    its created_at indexes) adds or subtracts at most half an hour of rows at the window's
    first hour (``split_window``), each rollup and its raw correction read by one
    statement. Totals are
    grouped by status alone; the per-type breakdown covers the ``types_limit`` job types
    with the most runs (chosen in SQL), and ``other_types`` counts the rest, so thousands
    of job types cost the database a GROUP BY, not the event loop a Python pass over
    every type (issue 10 §5).
    """
    now = now or utcnow()
    since = now - timedelta(hours=hours)
    split = split_window(since)
    edge_where = and_(T.c.created_at >= split.raw_from, T.c.created_at < split.raw_to)
    stuck_where = and_(
        T.c.status == JobStatus.RUNNING.value,
        T.c.started_at < now - timedelta(minutes=stuck_after_minutes),
        T.c.created_at >= since,
    )
    async with db.session() as session:
        runs_by_type = (
            union_all(
                select(H.c.job_type.label("job_type"), H.c.runs.label("runs")).where(
                    H.c.hour >= split.rollup_from
                ),
                select(T.c.job_type, literal(split.sign, BigInteger())).where(edge_where),
            )
        ).subquery("runs_by_type")
        ranked = (
            select(runs_by_type.c.job_type, func.sum(runs_by_type.c.runs).label("n"))
            .group_by(runs_by_type.c.job_type)
            .having(func.sum(runs_by_type.c.runs) > 0)
        ).subquery("ranked")
        # the busiest types and how many there are, in one pass over the grouped rows
        top_rows = (
            await session.execute(
                select(ranked.c.job_type, func.count().over())
                .order_by(ranked.c.n.desc(), ranked.c.job_type)
                .limit(types_limit)
            )
        ).all()
        top = [str(jt) for jt, _ in top_rows]
        n_types = int(top_rows[0][1]) if top_rows else 0
        per = await _window_sums(session, split, edge_where, top) if top else {}
        if len(top) == n_types:
            # every type is in the breakdown: the totals are its sum (one raw scan fewer)
            by_status = _merged(per)
        else:
            by_status = await _window_sums(session, split, edge_where, None)
        # running rows are few (a partial index holds them): group them all by type
        stuck_rows = await session.execute(
            select(T.c.job_type, func.count()).where(stuck_where).group_by(T.c.job_type)
        )
        stuck = {str(jt): int(n) for jt, n in stuck_rows.all()}
        stuck_total = sum(stuck.values())
        n_dur = sum(acc[1] for acc in by_status.get("", {}).values())
        p95: float | None = None
        exact = True
        if n_dur and n_dur <= exact_percentile_limit:
            p95 = await _exact_p95(db, session, since, n_dur)
        elif n_dur:
            exact = False
            p95 = await _histogram_p95(session, split, edge_where)

    stats = JobStats(hours=hours, since=since)
    for job_type in top:
        ts = _type_stats(per.get(job_type, {}))
        ts.stuck = stuck.get(job_type, 0)
        if ts.total > 0:
            stats.by_type[job_type] = ts
    overall = _type_stats(by_status.get("", {}))
    for field in ("total", *[s.value for s in JobStatus]):
        setattr(stats, field, getattr(overall, field))
    stats.stuck = stuck_total
    stats.avg_duration_ms = overall.avg_duration_ms
    stats.p95_duration_ms = p95
    stats.p95_exact = exact
    stats.types_total = n_types
    stats.other_types = max(0, n_types - len(stats.by_type))
    return stats


def _merged(per: dict[str, dict[str, list[int]]]) -> dict[str, dict[str, list[int]]]:
    """Per-type window sums added up by status, under the key '' (``_window_sums(None)``)."""
    total: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for statuses in per.values():
        for status, (runs, dcount, dsum) in statuses.items():
            acc = total[status]
            acc[0] += runs
            acc[1] += dcount
            acc[2] += dsum
    return {"": total}


def _type_stats(statuses: dict[str, list[int]]) -> JobTypeStats:
    """A JobTypeStats from {status: [runs, duration_count, duration_sum]}."""
    ts = JobTypeStats()
    dcount = dsum = 0
    for status, (runs, dc, ds) in statuses.items():
        if runs <= 0:
            continue
        ts.total += runs
        if status in JobTypeStats.model_fields and status != "total":
            setattr(ts, status, getattr(ts, status) + runs)
        dcount += dc
        dsum += ds
    ts.avg_duration_ms = dsum / dcount if dcount else None
    return ts


async def _window_sums(
    session: AsyncSession, split: WindowSplit, edge_where: Any, types: list[str] | None
) -> dict[str, dict[str, list[int]]]:
    """{job_type: {status: [runs, duration_count, duration_sum]}} over the window, for
    ``types`` only; with ``types=None``, all types together under the key ''. The rollup
    rows and the signed raw correction come from one statement (one snapshot)."""
    grouped = types is not None
    out: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    rollup = select(
        *([H.c.job_type] if grouped else []),
        H.c.status,
        func.sum(H.c.runs),
        func.sum(H.c.duration_count),
        func.sum(H.c.duration_sum),
        literal(1, BigInteger()),
    ).where(H.c.hour >= split.rollup_from)
    edge = select(
        *([T.c.job_type] if grouped else []),
        T.c.status,
        func.count(),
        func.count(T.c.duration_ms),
        func.coalesce(func.sum(T.c.duration_ms), 0),
        literal(split.sign, BigInteger()),
    ).where(edge_where)
    if grouped:
        rollup = rollup.where(H.c.job_type.in_(types)).group_by(H.c.job_type, H.c.status)
        edge = edge.where(T.c.job_type.in_(types)).group_by(T.c.job_type, T.c.status)
    else:
        rollup = rollup.group_by(H.c.status)
        edge = edge.group_by(T.c.status)
    for row in (await session.execute(union_all(rollup, edge))).all():
        values = tuple(row)
        job_type = str(values[0]) if grouped else ""
        status, runs, dcount, dsum, sign = values[1:] if grouped else values
        acc = out[job_type][status]
        acc[0] += sign * int(runs or 0)
        acc[1] += sign * int(dcount or 0)
        acc[2] += sign * int(dsum or 0)
    return out


async def _exact_p95(db: Database, session: AsyncSession, since: datetime, n: int) -> float | None:
    where = and_(T.c.created_at >= since, T.c.duration_ms.is_not(None))
    if db.is_postgres:
        value = await session.scalar(
            select(func.percentile_cont(0.95).within_group(T.c.duration_ms)).where(where)
        )
        return float(value) if value is not None else None
    # SQLite has no percentile_cont: the same interpolation from the two rows around the
    # 0-based position 0.95 * (n - 1), fetched with ORDER BY ... LIMIT 2 OFFSET.
    pos = 0.95 * (n - 1)
    rows = await session.execute(
        select(T.c.duration_ms).where(where).order_by(T.c.duration_ms).limit(2).offset(int(pos))
    )
    values = [float(v) for (v,) in rows.all()]
    return interpolate_cont(values, pos) if values else None


async def _histogram_p95(
    session: AsyncSession, split: WindowSplit, edge_where: Any
) -> float | None:
    """The window's duration histogram (rollup hours and the signed raw correction, one
    statement) and its p95."""
    counts: dict[int, int] = defaultdict(int)
    rollup = (
        select(D.c.bucket, func.sum(D.c.count), literal(1, BigInteger()))
        .where(D.c.hour >= split.rollup_from)
        .group_by(D.c.bucket)
    )
    edge = (
        select(T.c.duration_bucket, func.count(), literal(split.sign, BigInteger()))
        .where(edge_where, T.c.duration_bucket.is_not(None))
        .group_by(T.c.duration_bucket)
    )
    for bucket, n, sign in (await session.execute(union_all(rollup, edge))).all():
        counts[int(bucket)] += sign * int(n)
    return histogram_quantile(counts, 0.95)
