"""A tracked APScheduler process for the monitor tests: ``python -m
tests.rest_service.monitor_scheduler JOB_ID CRON``.

History and monitor registration go to ``OTEL_ASSIST_HISTORY_URL``; the job prints
``RAN <correlation_id>`` each time it runs. The test SIGKILLs this process.
"""

from __future__ import annotations

import sys
import time

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from otel_assist.correlation import get_correlation_id
from otel_assist.jobs import track_scheduler


def report() -> None:
    print("RAN", get_correlation_id(), flush=True)


def main(job_id: str, cron: str) -> None:
    scheduler = BackgroundScheduler(timezone="UTC")
    track_scheduler(scheduler, grace=5, max_runtime=30)
    scheduler.add_job(report, CronTrigger.from_crontab(cron, timezone="UTC"), id=job_id)
    scheduler.start()
    print("READY", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
