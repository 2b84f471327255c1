"""Cron jobs: lifecycle tracking, missed/skipped detection, APScheduler glue, monitors.

``tracker`` records each run (metrics, logs, history); ``monitors`` registers check-in
monitors with rest_service. ``otel_assist.jobs`` keeps the names the old module had.
"""

from otel_assist.jobs.tracker import (
    RUN_STATUSES,
    Clock,
    F,
    JobMeta,
    JobOptions,
    JobSettings,
    JobTracker,
    SystemClock,
    default_tracker,
    run_outcome,
    track_scheduler,
    tracked_job,
)

__all__ = [
    "RUN_STATUSES",
    "Clock",
    "F",
    "JobMeta",
    "JobOptions",
    "JobSettings",
    "JobTracker",
    "SystemClock",
    "default_tracker",
    "run_outcome",
    "track_scheduler",
    "tracked_job",
]
