"""APScheduler 3.x glue: ``track_scheduler(scheduler)`` wraps every job and listens to the
scheduler's events, handing them to a :class:`~otel_assist.jobs.tracker.JobTracker`.

    scheduler = AsyncIOScheduler()
    track_scheduler(scheduler, max_runtime=300)
    scheduler.add_job(send_reminder, "interval", minutes=1, kwargs={"user_id": 42})

``user_id`` / ``reminder_id`` are taken from the job's kwargs when present. APScheduler's
own ``Job ... raised an exception`` line is dropped for tracked jobs (``job failed`` carries
the same traceback), so one failure is one ERROR line.

Jobs in the memory job store are wrapped in place when added. Jobs in a persistent job
store are reloaded from storage on every run, so decorate their functions with
``@tracked_job`` (their job id in history is then the function's qualified name);
undecorated ones are still counted from APScheduler's executed/error events.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from otel_assist.history.shipper import HistoryShipper
from otel_assist.jobs import monitors as cron_monitors
from otel_assist.jobs.decorator import _FLAG, JobOptions, _wrap
from otel_assist.jobs.tracker import (
    Clock,
    JobMeta,
    JobSettings,
    JobTracker,
    RunsSubmitted,
    SchedulerReport,
    _default_job_type,
)


@dataclass
class _SchedulerOptions:
    job_type: Callable[[Any], str] | None
    max_runtime: float | Mapping[str, float] | None

    def meta(self, job: Any) -> JobMeta:
        func = getattr(job, "func", None)
        opts: JobOptions | None = getattr(func, _FLAG, None)
        if opts is not None and opts.job_type:
            job_type = opts.job_type
        elif self.job_type is not None:
            job_type = self.job_type(job)
        else:
            job_type = _default_job_type(str(job.id))
        limit: float | None = opts.max_runtime if opts is not None else None
        if limit is None:
            if isinstance(self.max_runtime, Mapping):
                limit = self.max_runtime.get(job_type)
            else:
                limit = self.max_runtime
        return JobMeta(str(job.id), str(job.name), job_type, limit, dict(job.kwargs or {}))


class _TrackedJobErrorFilter(logging.Filter):
    """Drops APScheduler's ``Job "..." raised an exception`` record for jobs the tracker
    wraps: the tracker's ``job failed`` line (with the same traceback) already reports the
    run, and two ERROR lines per failure would double what error-rate alerts count.
    Records about untracked jobs, and every other APScheduler record, pass unchanged."""

    MESSAGE = 'Job "%s" raised an exception'

    def __init__(self, tracker: JobTracker) -> None:
        super().__init__()
        self._tracker = tracker
        self._attached: set[str] = set()

    def attach(self, alias: str) -> None:
        # APScheduler logs a job's outcome on ``apscheduler.executors.<alias>``; a logger's
        # filters see only records created on that logger, so each alias gets this filter.
        if alias not in self._attached:
            self._attached.add(alias)
            logging.getLogger(f"apscheduler.executors.{alias}").addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != self.MESSAGE or not isinstance(record.args, tuple) or not record.args:
            return True
        job_id = getattr(record.args[0], "id", None)
        return not (isinstance(job_id, str) and self._tracker.reports_runs_of(job_id))


def track_scheduler(
    scheduler: Any,
    *,
    job_type: Callable[[Any], str] | None = None,
    max_runtime: float | Mapping[str, float] | None = None,
    grace: float | None = None,
    sweep_interval: float | None = None,
    shipper: HistoryShipper | None = None,
    clock: Clock | None = None,
) -> JobTracker:
    """Track every job of an APScheduler 3.x scheduler (call before or after start()).

    ``job_type(job)`` names a job's type (default: the job id without a trailing number,
    ``reminder_123`` -> ``reminder``); ``max_runtime`` is seconds, or a dict per job type;
    ``grace`` (seconds, default ``OTEL_ASSIST_JOB_GRACE_MS``) is how late a run may be
    before it counts as missed. ``clock`` replaces the real clocks (tests).
    """
    from otel_assist.extras import require

    require("queues", "otel_assist.jobs.track_scheduler")  # names the extra, not a traceback
    if job_type is not None and not callable(job_type):
        # A string here used to make every wrapped run fail before the job's own code, with
        # nothing logged: a programming error, so it stops set-up with the fix named.
        raise TypeError(
            f"track_scheduler(job_type=...) takes a function of the job returning its type,"
            f" not {type(job_type).__name__}: job_type=lambda job: {job_type!r}"
        )
    from apscheduler.events import (
        EVENT_EXECUTOR_ADDED,
        EVENT_JOB_ADDED,
        EVENT_JOB_ERROR,
        EVENT_JOB_EXECUTED,
        EVENT_JOB_MAX_INSTANCES,
        EVENT_JOB_MISSED,
        EVENT_JOB_MODIFIED,
        EVENT_JOB_SUBMITTED,
    )
    from apscheduler.jobstores.memory import MemoryJobStore

    base = JobSettings.from_env()
    settings = JobSettings(
        grace_s=base.grace_s if grace is None else grace,
        sweep_interval_s=base.sweep_interval_s if sweep_interval is None else sweep_interval,
        max_runtime_s=base.max_runtime_s,
    )
    if max_runtime is None:
        max_runtime = base.max_runtime_s
    tracker = JobTracker(shipper=shipper, settings=settings, clock=clock)
    opts = _SchedulerOptions(job_type, max_runtime)
    registrar = cron_monitors.registrar_for(shipper)  # rest_service-side monitors (issue 15)
    tracker.schedulers.append((scheduler, opts))

    def in_memory(alias: str) -> bool:
        store = getattr(scheduler, "_jobstores", {}).get(alias)
        return store is None or isinstance(store, MemoryJobStore)

    def wrap_job(job: Any, jobstore: str | None = None) -> None:
        tracker.remember(job, opts)
        with contextlib.suppress(Exception):
            cron_monitors.register_job(registrar, job, opts.meta(job), settings.grace_s)
        func = job.func
        alias = jobstore or getattr(job, "_jobstore_alias", None) or "default"
        if not in_memory(alias):
            # A persistent job store hands out a fresh copy per lookup and per run, so a
            # wrapper would be lost: a decorated function tracks itself, anything else is
            # reported from APScheduler's executed/error events.
            tracker._tracked_ids[job.id] = hasattr(func, _FLAG)
            return
        if getattr(func, "__otel_assist_scheduler_wrapped__", False):
            tracker._tracked_ids[job.id] = True
            return
        inner = getattr(func, "__wrapped__", None) if hasattr(func, _FLAG) else None
        target = inner if inner is not None else func
        if not callable(target):
            tracker._tracked_ids[job.id] = False
            return
        cache: list[Any] = [None, None]  # (job.kwargs object, JobMeta)

        def meta_of() -> JobMeta:
            # Rebuilt only when APScheduler replaced the job's kwargs (job.modify).
            if cache[0] is not job.kwargs:
                cache[0], cache[1] = job.kwargs, opts.meta(job)
            meta: JobMeta = cache[1]
            return meta

        wrapper = _wrap(target, tracker, meta_of)
        setattr(wrapper, _FLAG, getattr(func, _FLAG, JobOptions()))
        wrapper.__otel_assist_scheduler_wrapped__ = True
        job.func = wrapper
        tracker._tracked_ids[job.id] = True

    duplicate_filter = _TrackedJobErrorFilter(tracker)
    for alias in ("default", *getattr(scheduler, "_executors", {})):
        duplicate_filter.attach(alias)

    def on_event(event: Any) -> None:
        # Runs on scheduler or executor threads: only enqueue, never do work here.
        try:
            code = event.code
            if code == EVENT_EXECUTOR_ADDED:
                duplicate_filter.attach(event.alias)
            elif code in (EVENT_JOB_ADDED, EVENT_JOB_MODIFIED):
                job = scheduler.get_job(event.job_id, event.jobstore)
                if job is not None:
                    wrap_job(job, event.jobstore)
            elif code == EVENT_JOB_SUBMITTED:
                tracker.put(RunsSubmitted(event.job_id, list(event.scheduled_run_times)))
            elif code == EVENT_JOB_MAX_INSTANCES:
                tracker.put(
                    SchedulerReport(code, event.job_id, list(event.scheduled_run_times), None)
                )
            else:
                tracker.put(
                    SchedulerReport(
                        code,
                        event.job_id,
                        [event.scheduled_run_time],
                        getattr(event, "exception", None),
                    )
                )
        except Exception:  # noqa: S110 - tracking must never fail the scheduler
            pass

    scheduler.add_listener(
        on_event,
        EVENT_EXECUTOR_ADDED
        | EVENT_JOB_ADDED
        | EVENT_JOB_MODIFIED
        | EVENT_JOB_SUBMITTED
        | EVENT_JOB_MAX_INSTANCES
        | EVENT_JOB_MISSED
        | EVENT_JOB_EXECUTED
        | EVENT_JOB_ERROR,
    )
    for job in scheduler.get_jobs():
        with contextlib.suppress(Exception):
            wrap_job(job)
    tracker._ensure_thread()
    return tracker
