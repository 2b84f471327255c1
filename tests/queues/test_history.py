"""The history shipper against a real rest_service (uvicorn subprocess) over Postgres."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aredis
from apscheduler.schedulers.background import BackgroundScheduler

from otel_assist.correlation import correlation_scope
from otel_assist.history.shipper import HistorySettings, HistoryShipper
from otel_assist.jobs import track_scheduler
from otel_assist.queues import Message, QueueConsumer, QueueProducer, QueueSettings
from tests import servers
from tests.polling import poll, poll_async
from tests.queues.conftest import REPO, TOKEN, MetricView, RestService, subprocess_env


def settings_for(svc: RestService, **kw: object) -> HistorySettings:
    base: dict[str, object] = {
        "url": svc.api,
        "token": TOKEN,
        "flush_interval_s": 0.2,
        "retry_initial_s": 0.2,
        "retry_max_s": 1.0,
        "timeout_s": 5.0,
    }
    base.update(kw)
    return HistorySettings(**base)  # type: ignore[arg-type]


async def test_queue_and_job_events_arrive_with_payload_capture(
    rest_service: RestService, redis_server: servers.Redis, queue_name: str,
    metric_view: MetricView,
) -> None:  # fmt: skip
    shipper = HistoryShipper(settings_for(rest_service, payload_max_bytes=200))
    qs = QueueSettings(block_timeout_s=0.2)
    client = aredis.Redis.from_url(redis_server.url)
    producer = QueueProducer(client, queue_name, source="telegram", shipper=shipper, settings=qs)
    with correlation_scope() as cid:
        mid = await producer.push({"text": "hi", "api_token": "s3cret"}, type="human",
                                  user_id=42)  # fmt: skip
        big = await producer.push({"blob": "x" * 1000})
    consumer = QueueConsumer(client, queue_name, shipper=shipper, settings=qs)
    assert (await consumer.get()) is not None
    assert (await consumer.get()) is not None
    await client.lpush(queue_name, b"garbage{")
    assert (await consumer.get()) is not None
    assert await asyncio.to_thread(shipper.flush, 15)
    shipper.shutdown()

    q = f"queue_name = '{queue_name}'"
    assert rest_service.count(f"select count(*) from queue_message_logs where {q}") == 5
    row = rest_service.sql(
        f"select direction, message_type, source, user_id, correlation_id, payload "
        f"from queue_message_logs where message_id = '{mid}' order by direction desc"
    ).splitlines()
    assert len(row) == 2
    for line in row:
        direction, mtype, source, user_id, corr, payload = line.split("|")
        assert (mtype, source, user_id, corr) == ("human", "telegram", "42", cid)
        if direction == "push":  # the payload is stored once, on the push row
            assert '"api_token":"***"' in payload.replace(" ", "") and "s3cret" not in payload
        else:
            assert payload == ""
    big_payload = rest_service.sql(
        f"select payload from queue_message_logs where message_id = '{big}' limit 1"
    )
    assert '"_truncated"' in big_payload.replace(" ", "") or "_truncated" in big_payload
    assert metric_view.value("history_events", kind="queue", outcome="sent") == 5
    assert metric_view.value("history_events", kind="queue", outcome="dropped") == 0
    await client.aclose()


def test_a_bad_event_does_not_block_its_batch(rest_service: RestService) -> None:
    shipper = HistoryShipper(settings_for(rest_service))
    queue = "bad-" + uuid.uuid4().hex[:8]
    for i in range(9):
        shipper.submit("queue", {"event_id": f"{queue}-{i}", "queue_name": queue,
                                 "direction": "push", "message_type": "t"})  # fmt: skip
    shipper.submit("queue", {"event_id": f"{queue}-bad", "queue_name": queue,
                             "direction": "sideways"})  # fmt: skip
    assert shipper.flush(15)
    shipper.shutdown()
    assert (
        rest_service.count(f"select count(*) from queue_message_logs where queue_name = '{queue}'")
        == 9
    )
    assert shipper.stats[("queue", "dropped")] == 1
    assert shipper.stats[("queue", "sent")] == 9


@pytest.mark.slow
async def test_rest_service_down_30s_every_event_exactly_once(
    rest_service: RestService, redis_server: servers.Redis, queue_name: str, tmp_path: Path,
    metric_view: MetricView,
) -> None:  # fmt: skip
    """5,000 queue messages (push + pop each) and 200 job runs flow while rest_service is
    stopped for 30 s. Afterwards Postgres holds every event exactly once. No spool: the
    memory buffer rides out the outage with retries."""
    shipper = HistoryShipper(settings_for(rest_service))
    qs = QueueSettings(block_timeout_s=0.2, sample_interval_s=1.0)
    client = aredis.Redis.from_url(redis_server.url)
    producer = QueueProducer(client, queue_name, source="load", shipper=shipper, settings=qs)
    handled: list[str | None] = []

    async def handle(msg: Message) -> None:
        handled.append(msg.id)

    consumer = QueueConsumer(client, queue_name, handle, shipper=shipper, settings=qs)
    consumer_task = asyncio.create_task(consumer.run())

    job_id = "load_" + uuid.uuid4().hex[:8]
    runs = {"n": 0}
    done = threading.Event()
    scheduler = BackgroundScheduler()
    tracker = track_scheduler(scheduler, grace=120, sweep_interval=1.0, shipper=shipper)

    def job() -> None:
        runs["n"] += 1
        if runs["n"] >= 200:
            done.set()
            scheduler.pause_job(job_id)

    scheduler.add_job(job, "interval", seconds=0.12, id=job_id, max_instances=5)

    pushed: list[str] = []

    async def produce(n: int, seconds: float) -> None:
        per_tick = max(1, n // int(seconds / 0.05))
        while len(pushed) < n:
            for _ in range(min(per_tick, n - len(pushed))):
                with correlation_scope():
                    pushed.append(await producer.push({"n": len(pushed)}, type="load"))
            await asyncio.sleep(0.05)

    scheduler.start()
    producing = asyncio.create_task(produce(5000, 34.0))
    await poll_async(lambda: shipper.stats.get(("queue", "sent"), 0) > 0, 10.0,
                     "events shipped before the outage")  # fmt: skip
    rest_service.process.stop()
    outage_started = time.monotonic()
    await asyncio.sleep(30.0)  # the outage itself: the 30 s this test is named for
    # It kept trying during the outage (the first failing batch backs the cycle off).
    assert sum(shipper.stats.get((k, "retried"), 0) for k in ("job", "queue")) > 0
    rest_service.process.start()
    outage = time.monotonic() - outage_started
    await producing
    await asyncio.to_thread(done.wait, 60)
    await poll_async(lambda: len(handled) >= 5000, 60.0, "every message handled")
    consumer.stop()
    await consumer_task
    scheduler.shutdown(wait=True)
    assert await asyncio.to_thread(tracker.wait_idle, 10)
    assert await asyncio.to_thread(shipper.flush, 60)
    shipper.shutdown()

    assert outage >= 30
    assert len(set(pushed)) == 5000
    assert (
        rest_service.count(
            f"select count(*) from queue_message_logs where queue_name = '{queue_name}'"
        )
        == 10_000
    )
    assert (
        rest_service.count(
            f"select count(distinct message_id) from queue_message_logs "
            f"where queue_name = '{queue_name}' and direction = 'pop'"
        )
        == 5000
    )
    assert (
        rest_service.count(f"select count(*) from job_executions where job_id = '{job_id}'")
        == runs["n"]
    )
    assert (
        rest_service.count(
            f"select count(*) from job_executions where job_id = '{job_id}' "
            f"and status = 'completed' and started_at is not null and duration_ms is not null"
        )
        == runs["n"]
    )
    assert shipper.stats.get(("queue", "dropped"), 0) == 0
    assert shipper.stats.get(("job", "dropped"), 0) == 0
    assert metric_view.value("history_events", outcome="retried") > 0
    await client.aclose()


@pytest.mark.slow
def test_producer_restarted_mid_outage_with_spool_loses_nothing(
    rest_service: RestService, redis_server: servers.Redis, queue_name: str, tmp_path: Path
) -> None:
    """rest_service down; a producer process pushes, is restarted (SIGTERM: it spools what it
    could not send), the new process pushes more; rest_service returns and the second
    process replays the first one's spool. Every push is in Postgres exactly once."""
    spool = tmp_path / "spool"
    env = subprocess_env(
        OTEL_ASSIST_HISTORY_URL=rest_service.api,
        OTEL_ASSIST_HISTORY_TOKEN=TOKEN,
        OTEL_ASSIST_HISTORY_SPOOL_DIR=str(spool),
        OTEL_ASSIST_HISTORY_FLUSH_INTERVAL_MS="200",
        OTEL_ASSIST_HISTORY_RETRY_INITIAL_MS="200",
        OTEL_ASSIST_HISTORY_RETRY_MAX_MS="1000",
        OTEL_ASSIST_LOG_LEVEL="WARNING",
    )

    def start(n: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.queues.worker", "produce", redis_server.url,
             queue_name, str(n), "0.002"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=env,
        )  # fmt: skip

    def ids_until_done(proc: subprocess.Popen[bytes]) -> list[str]:
        assert proc.stdout is not None
        ids = []
        for line in proc.stdout:
            text = line.decode().strip()
            if text == "DONE":
                break
            ids.append(text)
        return ids

    rest_service.process.stop()
    try:
        first = start(1500)
        ids = ids_until_done(first)
        first.send_signal(signal.SIGTERM)
        _out, err = first.communicate(timeout=30)
        assert first.returncode == 0, err.decode()[-2000:]
        assert len(ids) == 1500
        assert any(spool.glob("*.jsonl")), "the first process spooled its events"

        second = start(500)
        ids += ids_until_done(second)
    finally:
        rest_service.process.start()
    try:
        q = f"queue_name = '{queue_name}'"

        def all_stored() -> bool:
            if second.poll() is not None:
                raise AssertionError(f"producer died: {second.communicate()[1].decode()[-2000:]}")
            return rest_service.count(f"select count(*) from queue_message_logs where {q}") >= 2000

        poll(all_stored, 60, "all pushes in Postgres")
        poll(lambda: not any(spool.glob("*.jsonl")), 30, "spool drained")
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=30)
    assert len(set(ids)) == 2000
    stored = set(rest_service.sql(f"select message_id from queue_message_logs where {q}").split())
    assert stored == set(ids)
    assert rest_service.count(f"select count(*) from queue_message_logs where {q}") == 2000


def test_a_tracked_job_failing_with_hostile_text_is_stored_failed(
    rest_service: RestService,
) -> None:
    """Issue 10 defect 1: a job whose exception text holds a lone surrogate (an undecodable
    file name) and a DSN password. The tracker's log call used to raise, so the failure
    event was never shipped and the row stayed `running`. Now: one stored row, `failed`,
    the error text escaped and the password scrubbed."""
    shipper = HistoryShipper(settings_for(rest_service))
    scheduler = BackgroundScheduler()
    tracker = track_scheduler(scheduler, shipper=shipper)
    job_id = "hostile-" + uuid.uuid4().hex[:8]
    ran = threading.Event()

    def read_dir() -> None:
        ran.set()
        raise OSError("cannot read b'\\xff' as \udcff via postgresql://u:hunter2@db/x")

    scheduler.add_job(read_dir, "interval", seconds=0.3, id=job_id)
    scheduler.start()
    try:
        assert ran.wait(15)
        scheduler.pause()
        assert tracker.wait_idle()
        assert shipper.flush(15)
    finally:
        scheduler.shutdown(wait=True)
        shipper.shutdown()
    rows = rest_service.sql(
        "select status || '|' || coalesce(error, '') from job_executions"
        f" where job_id = '{job_id}' and status <> 'scheduled'"
    ).splitlines()
    assert rows, "no finished run stored"
    for row in rows:
        status, error = row.split("|", 1)
        assert status == "failed", row
        assert "udcff" in error or "\ufffd" in error, error
        # secrets are scrubbed by shape from every string of a history row too
        assert "hunter2" not in error, error
