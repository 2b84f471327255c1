"""Cron jobs: every run tracked, including the runs that never happen.

``tracker`` is the thread that turns typed run and scheduler events into log lines,
metrics and history (time from an injectable clock); ``detection`` finds missed, skipped
and stuck runs; ``decorator`` is ``@tracked_job`` and the per-run wrapper; ``apscheduler``
is ``track_scheduler()``, the APScheduler 3.x glue; ``monitors`` registers check-in
monitors with rest_service. ``otel_assist.jobs`` keeps the names the old module had.
"""

from otel_assist.jobs.apscheduler import track_scheduler
from otel_assist.jobs.decorator import F, JobOptions, tracked_job
from otel_assist.jobs.tracker import (
    RUN_STATUSES,
    Clock,
    JobMeta,
    JobSettings,
    JobTracker,
    Ping,
    RunEnded,
    RunsSubmitted,
    RunStarted,
    SchedulerReport,
    SweepNow,
    SystemClock,
    TrackerEvent,
    default_tracker,
    run_outcome,
)

__all__ = [
    "RUN_STATUSES",
    "Clock",
    "F",
    "JobMeta",
    "JobOptions",
    "JobSettings",
    "JobTracker",
    "Ping",
    "RunEnded",
    "RunStarted",
    "RunsSubmitted",
    "SchedulerReport",
    "SweepNow",
    "SystemClock",
    "TrackerEvent",
    "default_tracker",
    "run_outcome",
    "track_scheduler",
    "tracked_job",
]
