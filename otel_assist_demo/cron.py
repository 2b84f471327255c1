"""The simulated cron service: APScheduler 3.x jobs, tracked with
``otel_assist.jobs.track_scheduler`` (run ids, correlation ids, missed/timed-out runs).

* ``reminders`` (every 3 s): pushes due reminders to ``to_telegram`` (source ``cron``), so
  a reminder's queue message and its job run share the run's correlation_id;
* ``memory_extraction`` (every 5 s): distils a fact from recent chats and saves it through
  rest_service; fails now and then (malformed LLM output) with a real traceback;
* ``update_reminders`` (every 7 s): refreshes reminders from the calendar; usually quick,
  sometimes slower than its 2 s max runtime (reported as timed out / stuck).

Short intervals so a 20-second demo already shows every outcome.

Cron monitors (docs/monitors.md), which work on minutes, so they show within ~3 minutes:

* ``nightly-export`` is a check-in job: once a minute a subprocess posts ``in_progress``
  and then ``ok`` (or ``error`` with its exit code) to rest_service over plain HTTP, the
  way a crontab line wrapped in ``scripts/otel-assist-checkin.sh`` does;
* ``minutely_digest`` runs on its own tracked scheduler, which registers it as a monitor;
  after its first run the demo stops that scheduler (as if its process had died), and
  rest_service's sweeper marks the next run ``missed`` - on the admin Monitors page and
  in ``cron_monitor_status`` on /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from otel_assist.history import HistoryShipper
from otel_assist.jobs import JobTracker, track_scheduler
from otel_assist.logs import get_logger
from otel_assist.queues import QueueProducer
from otel_assist_demo.synthetic import FACTS
from otel_assist_demo.world import TO_TELEGRAM, World

log = get_logger("otel_assist_demo.cron", component="cron")

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
        # Through the same check as the assistant's: a fact the user also told the
        # assistant (or this job found before) is stored once.
        if not await w.remember(user.user_id, fact, "memory_extraction"):
            return "fact already known"
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
    start_monitor_demo(world, shipper)
    return scheduler, tracker


#: The check-in client run as a subprocess: form-encoded POSTs, as ``curl -d`` sends them.
CHECKIN_CLIENT = r"""
import random, sys, time, urllib.parse, urllib.request
url, token, slug, run = sys.argv[1:5]
def checkin(**fields):
    body = urllib.parse.urlencode({"check_in_id": run, **fields}).encode()
    req = urllib.request.Request(f"{url}/monitors/{slug}/checkins", data=body, method="POST")
    req.add_header("Authorization", f"Bearer {token}")
    urllib.request.urlopen(req, timeout=10).read()
checkin(status="in_progress")
started = time.monotonic()
time.sleep(random.uniform(0.5, 2.0))
code = 0 if random.random() > 0.2 else 3
fields = {"duration": f"{time.monotonic() - started:.3f}"}
if code:
    checkin(status="error", exit_code=str(code), message="export target unreachable", **fields)
else:
    checkin(status="ok", **fields)
sys.exit(code)
"""
CHECKIN_SLUG = "nightly-export"
DIGEST_JOB = "minutely_digest"
_monitor_tasks: list[asyncio.Task[Any]] = []


async def checkin_job(world: World) -> None:
    """Declare ``nightly-export`` and check in for it from a subprocess every minute."""
    api = world.api
    token = api.headers.get("Authorization", "").removeprefix("Bearer ")
    spec = {"cron": "* * * * *", "grace_seconds": 20, "max_runtime_seconds": 30}
    resp = await api.put(
        f"/monitors/{CHECKIN_SLUG}", json={**spec, "job_type": "export", "owner_service": "demo"}
    )
    resp.raise_for_status()
    n = 0
    while not world.stopping.is_set():
        now = datetime.now(UTC)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(world.stopping.wait(), 60.5 - now.second - now.microsecond / 1e6)
        if world.stopping.is_set():
            return
        n += 1
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHECKIN_CLIENT,
            str(api.base_url).rstrip("/"),
            token,
            CHECKIN_SLUG,
            f"demo-{datetime.now(UTC):%Y%m%dT%H%M}-{n}",
        )
        code = await proc.wait()
        log.info("check-in job finished", event_type="job_end", exit_code=code)


async def digest_then_die(world: World, shipper: HistoryShipper | None) -> None:
    """A second tracked scheduler whose one job runs each minute; stopped after its first
    run, so its monitor misses the next one."""
    ran = asyncio.Event()

    async def digest() -> str:
        ran.set()
        return "digest sent"

    scheduler = AsyncIOScheduler(timezone="UTC")
    tracker = track_scheduler(
        scheduler, job_type=lambda job: "digest", grace=10.0, sweep_interval=1.0, shipper=shipper
    )
    scheduler.add_job(digest, "cron", minute="*", id=DIGEST_JOB, name="minutely digest")
    scheduler.start()
    waits = [asyncio.create_task(ran.wait()), asyncio.create_task(world.stopping.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if not world.stopping.is_set():
            log.warning(
                "demo: stopping the digest scheduler; its next run will be reported missed",
                event_type="info",
            )
    finally:
        for task in waits:
            task.cancel()
        with contextlib.suppress(Exception):
            scheduler.shutdown(wait=False)
        await asyncio.to_thread(tracker.wait_idle, 5.0)
        tracker.shutdown(5.0)


def start_monitor_demo(world: World, shipper: HistoryShipper | None) -> None:
    """Start both monitor demos (cancelled by ``stop``)."""
    _monitor_tasks.extend(
        [
            asyncio.create_task(checkin_job(world), name="checkin-job"),
            asyncio.create_task(digest_then_die(world, shipper), name="digest-scheduler"),
        ]
    )


def stop(scheduler: AsyncIOScheduler, tracker: JobTracker) -> None:
    """Stop scheduling; let the tracker hand its last events to the history shipper."""
    for task in _monitor_tasks:
        task.cancel()
    _monitor_tasks.clear()
    with contextlib.suppress(Exception):
        scheduler.shutdown(wait=False)
    tracker.wait_idle(5.0)
    tracker.shutdown(5.0)
