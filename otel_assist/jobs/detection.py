"""Runs that never happen, found by the tracker's sweep: missed, skipped and stuck runs.

* **missed**: a run due more than ``grace`` ago that never started. Two ways to get there:
  the scheduler never fired it (paused, its thread or loop blocked, the process was
  down) - the sweep walks the trigger's fire times between the job's stale
  ``next_run_time`` and now - or it was submitted but never began (executor saturated).
  APScheduler's own EVENT_JOB_MISSED (reported when it later picks a misfire up) is
  deduplicated against the sweep's by a deterministic run id.
* **timed out / stuck**: a run still going past its ``max_runtime``. Its status becomes
  ``timed_out`` for good: counted once then, and when it finishes later its duration (and
  error) are recorded but it is not counted again; ``cron_jobs_running_over_max_runtime``
  counts those still running.
* **skipped**: EVENT_JOB_MAX_INSTANCES (a run skipped because the previous one still
  runs).

:class:`Detection` is the part of :class:`~otel_assist.jobs.tracker.JobTracker` that does
this; it runs on the tracker thread only and reads time from the tracker's clock.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from otel_assist.correlation import new_correlation_id
from otel_assist.logs.configure import get_logger
from otel_assist.metrics import instruments as metrics

if TYPE_CHECKING:
    from otel_assist.jobs.tracker import Clock, JobMeta, JobSettings, MetaSource, _Running

_log = get_logger("otel_assist.jobs")


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _missed_run_id(job_id: str, due: datetime) -> str:
    digest = hashlib.sha1(f"{job_id}|{_utc(due).isoformat()}".encode(), usedforsecurity=False)
    return "missed-" + digest.hexdigest()[:24]


class Detection:
    """Missed, skipped and stuck runs; mixed into the tracker, whose state it reads."""

    settings: JobSettings
    clock: Clock
    schedulers: list[tuple[Any, MetaSource]]
    running: dict[str, _Running]
    _known_types: set[str]
    _job_types: dict[str, str]
    _pending: dict[str, deque[datetime]]
    _reported_missed: dict[tuple[str, datetime], float]

    def _count(self, job_type: str, status: str) -> None:
        raise NotImplementedError

    def _meta_for(self, job_id: str) -> JobMeta:
        raise NotImplementedError

    def _ship(
        self,
        run_id: str,
        meta: JobMeta,
        kind: str,
        at: float,
        correlation_id: str,
        *,
        duration_s: float | None = None,
        error: str | None = None,
        traceback: str | None = None,
    ) -> None:
        raise NotImplementedError

    def _missed(self, meta: JobMeta, due: datetime, why: str) -> None:
        key = (meta.job_id, due)
        if key in self._reported_missed:
            return
        self._reported_missed[key] = self.clock.monotonic()
        self._known_types.add(meta.job_type)
        self._count(meta.job_type, "missed")
        run_id = _missed_run_id(meta.job_id, due)
        _log.warning(
            "job run missed",
            event_type="job_error",
            job_id=meta.job_id,
            job_type=meta.job_type,
            run_id=run_id,
            due=due.isoformat(),
            reason=why,
        )
        cid = new_correlation_id()
        self._ship(run_id, meta, "scheduled", due.timestamp(), cid)
        self._ship(run_id, meta, "missed", due.timestamp(), cid)

    def _skipped(self, meta: JobMeta, due: datetime) -> None:
        self._count(meta.job_type, "skipped")
        run_id = "skipped-" + _missed_run_id(meta.job_id, due)[7:]
        _log.warning(
            "job run skipped: previous run still going (max instances reached)",
            event_type="job_error",
            job_id=meta.job_id,
            job_type=meta.job_type,
            run_id=run_id,
            due=due.isoformat(),
        )
        cid = new_correlation_id()
        self._ship(run_id, meta, "scheduled", due.timestamp(), cid)
        self._ship(run_id, meta, "skipped", due.timestamp(), cid)

    def sweep(self) -> None:
        """Missed, stuck and gauge upkeep. Runs on the tracker thread every sweep interval."""
        now_mono = self.clock.monotonic()
        now = datetime.fromtimestamp(self.clock.time(), UTC)
        grace = timedelta(seconds=self.settings.grace_s)
        cat = metrics.catalog()
        # Stuck runs.
        over: dict[str, int] = defaultdict(int)
        for run_id, info in list(self.running.items()):
            limit = info.meta.max_runtime
            if limit is None or now_mono - info.started_mono <= limit:
                continue
            over[info.meta.job_type] += 1
            if not info.timed_out:
                info.timed_out = True
                self._count(info.meta.job_type, "timed_out")
                _log.warning(
                    "job run exceeded its max runtime",
                    event_type="job_error",
                    correlation_id=info.correlation_id,
                    job_id=info.meta.job_id,
                    job_type=info.meta.job_type,
                    run_id=run_id,
                    max_runtime_s=limit,
                    running_s=round(now_mono - info.started_mono, 3),
                )
                self._ship(run_id, info.meta, "timed_out", self.clock.time(), info.correlation_id)
        for job_type in self._known_types | set(over):
            cat["cron_jobs_running_over_max_runtime"].set(over.get(job_type, 0), job_type=job_type)
        # Submitted but never started.
        for job_id, pending in self._pending.items():
            while pending and now - pending[0] > grace:
                self._missed(self._meta_for(job_id), pending.popleft(), "submitted, never started")
        # Never fired, and the scheduled-jobs gauge.
        scheduled: dict[str, int] = defaultdict(int)
        for scheduler, opts in self.schedulers:
            try:
                jobs = scheduler.get_jobs()
            except Exception:  # noqa: S112 - a scheduler being shut down
                continue
            for job in jobs:
                meta = opts.meta(job)
                self._known_types.add(meta.job_type)
                self._job_types[job.id] = meta.job_type
                scheduled[meta.job_type] += 1
                nrt = getattr(job, "next_run_time", None)
                if nrt is not None and now - _utc(nrt) > grace:
                    self._missed_fire_times(job, meta, _utc(nrt), now - grace)
        for job_type in self._known_types:
            cat["cron_scheduled_jobs"].set(scheduled.get(job_type, 0), job_type=job_type)
        # Forget old dedup keys (an hour is far beyond any misfire grace).
        cutoff = now_mono - max(3600.0, 10 * self.settings.grace_s)
        for key, seen in list(self._reported_missed.items()):
            if seen < cutoff:
                del self._reported_missed[key]

    def _missed_fire_times(self, job: Any, meta: JobMeta, first: datetime, until: datetime) -> None:
        due: datetime | None = first
        for _ in range(100):  # bounded per sweep
            if due is None or due > until:
                return
            self._missed(meta, due, "due but never fired (scheduler paused, blocked or down)")
            nxt = job.trigger.get_next_fire_time(due, until)
            due = _utc(nxt) if nxt is not None and _utc(nxt) > due else None
