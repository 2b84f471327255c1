"""The simulated cron service: APScheduler 3.x jobs, tracked with
``otel_assist.jobs.track_scheduler`` (run ids, correlation ids, missed/timed-out runs).

* ``reminders`` (every 3 s): pushes due reminders to ``to_telegram`` (source ``cron``), so
  a reminder's queue message and its job run share the run's correlation_id;
* ``memory_extraction`` (every 5 s): distils a fact from recent chats and saves it through
  rest_service; fails now and then (malformed LLM output) with a real traceback;
* ``update_reminders`` (every 7 s): refreshes reminders from the calendar; usually quick,
  sometimes slower than its 2 s max runtime (reported as timed out / stuck).

Short intervals so a 20-second demo already shows every outcome.
"""

from __future__ import annotations

import contextlib
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from otel_assist.demo.synthetic import FACTS
from otel_assist.demo.world import TO_TELEGRAM, World
from otel_assist.history import HistoryShipper
from otel_assist.jobs import JobTracker, track_scheduler
from otel_assist.logs import get_logger
from otel_assist.queues import QueueProducer

log = get_logger("otel_assist.demo.cron", component="cron")

#: job id -> (job type, interval seconds, max runtime seconds)
SCHEDULE: dict[str, tuple[str, float, float]] = {
    "reminders": ("reminder", 3.0, 5.0),
    "memory_extraction": ("memory_extraction", 5.0, 10.0),
    "update_reminders": ("update_reminders", 7.0, 2.0),
}


class ExtractionError(ValueError):
    """The extraction model returned something that is not the expected JSON."""


class Jobs:
    def __init__(self, world: World) -> None:
        self.world = world
        self.producer = QueueProducer(world.redis, TO_TELEGRAM, source="cron")

    async def reminders(self) -> str:
        w = self.world
        due = w.rng.sample(w.users, k=w.rng.randint(0, 2))
        for user in due:
            await self.producer.push(
                {"chat_id": user.chat_id, "text": f"Reminder for {user.name}: stand-up at 10"},
                type="reminder",
                user_id=user.user_id,
            )
        await w.sleep(w.latency(0.05))
        log.info("reminders sent", event_type="queue_push", count=len(due))
        return f"{len(due)} reminders sent"

    async def memory_extraction(self) -> str:
        w = self.world
        user = w.rng.choice(w.users)
        await w.sleep(w.latency(0.3))
        if w.rng.random() < 0.3:
            _parse_extraction('{"facts": [ "unterminated')
        _said, fact = w.rng.choice(FACTS)
        resp = await w.api.post(
            "/memories",
            json={"user_id": user.user_id, "content": fact, "source": "memory_extraction"},
        )
        resp.raise_for_status()
        log.info("memory extracted", event_type="memory_save", user_id=user.user_id)
        return "1 fact saved"

    async def update_reminders(self) -> str:
        w = self.world
        slow = w.rng.random() < 0.3
        await w.sleep(w.latency(3.0 if slow else 0.3, 0.2))
        log.info("reminders refreshed", event_type="info", slow=slow)
        return "calendar synced"


def _parse_extraction(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExtractionError(f"extraction output is not valid JSON: {exc}") from exc


def start(
    world: World, shipper: HistoryShipper | None = None
) -> tuple[AsyncIOScheduler, JobTracker]:
    """Build the scheduler, track it (one call, as a real cron service would) and start it."""
    jobs = Jobs(world)
    scheduler = AsyncIOScheduler(timezone="UTC")
    tracker = track_scheduler(
        scheduler,
        job_type=lambda job: SCHEDULE[job.id][0] if job.id in SCHEDULE else str(job.id),
        max_runtime={job_type: limit for job_type, _every, limit in SCHEDULE.values()},
        grace=10.0,
        sweep_interval=1.0,
        shipper=shipper,
    )
    for job_id, (_job_type, interval, _max_runtime) in SCHEDULE.items():
        scheduler.add_job(
            getattr(jobs, job_id),
            "interval",
            seconds=interval,
            id=job_id,
            name=job_id.replace("_", " "),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=30,
        )
    scheduler.start()
    return scheduler, tracker


def stop(scheduler: AsyncIOScheduler, tracker: JobTracker) -> None:
    """Stop scheduling; let the tracker hand its last events to the history shipper."""
    with contextlib.suppress(Exception):
        scheduler.shutdown(wait=False)
    tracker.wait_idle(5.0)
    tracker.shutdown(5.0)
