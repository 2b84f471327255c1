"""An APScheduler 3.x cron service whose every run is tracked by otel-assist.

Needs the ``queues`` extra (APScheduler is in it): ``pip install 'otel-assist[queues]'``::

    python examples/scheduler.py --seconds 5

Each run gets a run id and its own correlation_id; ``job_start`` / ``job_end`` /
``job_error`` lines and ``cron_jobs_total{job_type,status}`` report it, and runs that never
happen (missed) or run too long (timed_out) are reported too.
"""

from __future__ import annotations

import argparse
import asyncio

from apscheduler.schedulers.asyncio import AsyncIOScheduler

import otel_assist
from otel_assist.jobs import track_scheduler

log = otel_assist.get_logger()


async def send_reminder(user_id: int) -> None:
    """The job: here it only logs (with the run's correlation_id attached)."""
    log.info("reminder sent", user_id=user_id)


async def main(seconds: float) -> None:
    scheduler = AsyncIOScheduler()
    tracker = track_scheduler(scheduler, max_runtime={"reminder": 120})
    scheduler.add_job(
        send_reminder, "interval", seconds=1, id="reminder_42", kwargs={"user_id": 42}
    )
    scheduler.start()
    await asyncio.sleep(seconds)
    scheduler.shutdown(wait=True)
    tracker.wait_idle()  # every job_end line and metric is recorded before exit


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="run this long (default 5)")
    otel_assist.configure("scheduler_example")
    asyncio.run(main(parser.parse_args().seconds))
