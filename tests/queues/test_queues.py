"""Queue instrumentation against a real Redis: correlation, metrics, garbage, outages."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import orjson
import pytest
import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError

from otel_assist.correlation import correlation_scope, get_correlation_id
from otel_assist.metrics import redis as redis_metrics
from otel_assist.queues import (
    Message,
    QueueConsumer,
    QueueProducer,
    QueueSettings,
    redis_client,
    sample_once,
)
from tests import metric_reader, servers
from tests.polling import poll_async
from tests.queues.conftest import REPO, MetricView, subprocess_env

NO_HISTORY = QueueSettings(history=False, block_timeout_s=0.2, sample_interval_s=0.1)


async def test_correlation_id_travels_to_the_consumer_process_logs(
    redis_server: servers.Redis, queue_name: str
) -> None:
    """Producer here, consumer in another process: each handler log line there carries
    the correlation_id that was current here when the message was pushed."""
    n = 5
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.queues.worker", "consume", redis_server.url, queue_name,
         str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=subprocess_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"READY"
        client = aredis.Redis.from_url(redis_server.url)
        producer = QueueProducer(client, queue_name, source="test", settings=NO_HISTORY)
        sent: dict[str, str] = {}
        for i in range(n):
            with correlation_scope() as cid:
                mid = await producer.push({"i": i}, type="human", user_id=7)
                sent[mid] = cid
        await client.aclose()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    lines = [orjson.loads(line) for line in out.splitlines() if line.startswith(b"{")]
    handled = [rec for rec in lines if rec.get("event") == "handled message"]
    assert len(handled) == n
    for rec in handled:
        assert rec["correlation_id"] == sent[rec["message_id"]]
    assert len({rec["correlation_id"] for rec in handled}) == n


async def test_wait_time_and_oldest_age_metrics(
    redis_server: servers.Redis, queue_name: str, metric_view: MetricView
) -> None:
    client = aredis.Redis.from_url(redis_server.url)
    producer = QueueProducer(client, queue_name, settings=NO_HISTORY)
    for i in range(3):
        await producer.push({"i": i})
    pushed_at = time.time()
    await asyncio.sleep(0.6)
    sampled = await sample_once(client, [queue_name])
    age_expected = time.time() - pushed_at
    length, age = sampled[queue_name]
    assert length == 3
    assert metric_view.value("queue_length", queue_name=queue_name) == 3
    gauge_age = metric_view.value("queue_oldest_message_age", queue_name=queue_name)
    assert gauge_age == pytest.approx(age, abs=1e-9)
    assert age_expected - 0.05 <= age <= age_expected + 0.25

    consumer = QueueConsumer(client, queue_name, settings=NO_HISTORY)
    waits = []
    for _ in range(3):
        msg = await consumer.get()
        assert msg is not None and msg.wait_s is not None
        waits.append(msg.wait_s)
    assert all(0.6 <= w <= 0.6 + 0.5 for w in waits), waits
    count, total, lo, hi = metric_view.histogram("queue_wait_duration", queue_name=queue_name)
    assert hi <= 0.6 + 0.5
    assert count == 3
    assert total == pytest.approx(sum(waits), rel=1e-6)
    assert lo >= 0.6
    assert metric_view.value("queue_messages", queue_name=queue_name, direction="push") == 3
    assert metric_view.value("queue_messages", queue_name=queue_name, direction="pop") == 3
    await sample_once(client, [queue_name])
    assert metric_view.value("queue_length", queue_name=queue_name) == 0
    assert metric_view.value("queue_oldest_message_age", queue_name=queue_name) == 0
    await client.aclose()


async def test_redis_commands_are_timed_by_command_and_outcome(
    redis_server: servers.Redis, queue_name: str, metric_view: MetricView
) -> None:
    client = redis_metrics.instrument(aredis.Redis.from_url(redis_server.url))
    assert redis_metrics.instrument(client) is client
    await client.lpush(queue_name, b"x")
    await client.set(queue_name + ":str", "v")
    with pytest.raises(Exception, match="WRONGTYPE"):
        await client.lpush(queue_name + ":str", b"x")
    count, *_ = metric_view.histogram(
        "db.client.operation.duration", **{"db.operation.name": "LPUSH", "db.system.name": "redis"}
    )
    assert count == 2
    durations = metric_reader.points(metric_view.reader, "db.client.operation.duration")
    errors = [dict(p.attributes or {}) for p in durations if "error.type" in (p.attributes or {})]
    assert errors == [
        {"db.system.name": "redis", "db.operation.name": "LPUSH", "error.type": "ResponseError"}
    ]
    await client.aclose()


async def test_garbage_is_counted_dead_lettered_and_the_consumer_survives(
    redis_server: servers.Redis, queue_name: str, metric_view: MetricView
) -> None:
    client = aredis.Redis.from_url(redis_server.url)
    dead = queue_name + ":dead"
    garbage = [
        b"not json at all {",
        b'{"v": 1, "id": 12, "enqueued_at": "yesterday", "payload": null}',
        b"[" + b'"x",' * (5 * 1024 * 1024 // 4) + b'"x"]',  # 5 MB
    ]
    for raw in garbage:
        await client.lpush(queue_name, raw)
    await client.lpush(queue_name, b'{"text": "from an old producer"}')
    producer = QueueProducer(client, queue_name, settings=NO_HISTORY)
    good_id = await producer.push({"ok": True})

    handled: list[Message] = []

    async def handler(msg: Message) -> None:
        handled.append(msg)
        if msg.payload == {"boom": True}:
            raise RuntimeError("handler bug")

    consumer = QueueConsumer(client, queue_name, handler, dead_letter=dead, settings=NO_HISTORY)
    task = asyncio.create_task(consumer.run())
    await poll_async(lambda: len(handled) == 2, what="legacy + good message handled")
    await producer.push({"boom": True})
    await producer.push({"after": "boom"})
    await poll_async(lambda: len(handled) == 4, what="consumer alive after a handler error")
    consumer.stop()
    await asyncio.wait_for(task, 5)

    assert [m.invalid_reason for m in handled] == ["legacy", None, None, None]
    assert handled[1].id == good_id
    assert await client.llen(dead) == 3
    assert sorted(await client.lrange(dead, 0, -1), key=len) == sorted(garbage, key=len)
    for reason in ("invalid_json", "invalid_envelope", "too_large", "legacy"):
        assert (
            metric_view.value("queue_invalid_messages", queue_name=queue_name, reason=reason) == 1
        ), reason
    assert metric_view.value("messages_processed", status="error") == 1
    assert metric_view.value("messages_processed", status="success") == 3
    await client.aclose()


async def test_without_dead_letter_garbage_is_handed_on_raw(
    redis_server: servers.Redis, queue_name: str
) -> None:
    client = aredis.Redis.from_url(redis_server.url)
    await client.lpush(queue_name, b"\xff\xfe garbage")
    consumer = QueueConsumer(client, queue_name, settings=NO_HISTORY)
    msg = await consumer.get()
    assert msg is not None
    assert msg.invalid_reason == "invalid_json"
    assert msg.payload == b"\xff\xfe garbage"
    with msg.attached() as cid:  # a message without baggage still gets its own id
        assert get_correlation_id() == cid and cid
    await client.aclose()


async def test_redis_down_push_raises_and_is_counted_consumer_reconnects(
    own_redis: servers.Redis, queue_name: str, metric_view: MetricView
) -> None:
    client = redis_client.connect(own_redis.url, socket_connect_timeout=0.5)
    settings = QueueSettings(
        history=False, block_timeout_s=0.2, sample_interval_s=0.1, reconnect_max_s=0.5
    )
    producer = QueueProducer(client, queue_name, settings=settings)
    handled: list[Message] = []

    async def handler(msg: Message) -> None:
        handled.append(msg)

    consumer = QueueConsumer(client, queue_name, handler, settings=settings)
    task = asyncio.create_task(consumer.run())
    await producer.push({"n": 1})
    await poll_async(lambda: len(handled) == 1, what="first message")

    own_redis.process.stop()
    with pytest.raises((RedisConnectionError, OSError)):
        await producer.push({"n": 2})
    pushes = metric_reader.series(metric_view.reader, "queue_errors", direction="push")
    errors = [a for a, _ in pushes]
    assert errors and errors[0]["queue_name"] == queue_name
    assert metric_view.value("queue_errors", queue_name=queue_name, direction="push") == 1
    await poll_async(lambda: not consumer.connected, what="consumer notices the outage")
    await asyncio.sleep(1.0)  # several backoff rounds while Redis is down
    assert not task.done()

    own_redis.process.start()
    await poll_async(lambda: consumer.connected, timeout=15, what="consumer reconnects")
    await producer.push({"n": 3})
    await poll_async(lambda: len(handled) == 2, timeout=10, what="message after the outage")
    assert handled[-1].payload == {"n": 3}
    assert metric_view.value("queue_errors", queue_name=queue_name, direction="pop") >= 1
    consumer.stop()
    await asyncio.wait_for(task, 5)
    await client.aclose()


async def _pushes_failing_after_restart(own_redis: servers.Redis, client: aredis.Redis) -> int:
    """Fill the pool with five connections, restart Redis, push six times."""
    await asyncio.gather(*(client.lpush("restart-q", b"x") for _ in range(5)))
    own_redis.process.stop()
    own_redis.process.start()
    failures = 0
    for _ in range(6):
        try:
            await client.lpush("restart-q", b"y")
        except RedisConnectionError:
            failures += 1
    await client.aclose()
    return failures


async def test_plain_from_url_client_loses_a_push_after_a_redis_restart(
    own_redis: servers.Redis,
) -> None:
    """The problem redis_client.connect() exists for: redis-py's from_url() pool has no
    retries, so a connection opened before the restart fails once even though Redis is up."""
    plain = aredis.Redis.from_url(own_redis.url, socket_connect_timeout=0.5)
    assert await _pushes_failing_after_restart(own_redis, plain) >= 1


async def test_connect_client_pushes_on_the_first_try_after_a_redis_restart(
    own_redis: servers.Redis, metric_view: MetricView
) -> None:
    client = redis_client.connect(own_redis.url, socket_connect_timeout=0.5)
    assert await _pushes_failing_after_restart(own_redis, client) == 0
    check = aredis.Redis.from_url(own_redis.url)
    assert await check.llen("restart-q") == 6  # the retried pushes landed exactly once
    await check.aclose()
    count, *_ = metric_view.histogram(
        "db.client.operation.duration", **{"db.operation.name": "LPUSH"}
    )
    assert count == 5 + 6  # connect() instruments the client: one point per LPUSH call


async def test_connect_client_still_fails_fast_while_redis_is_down(
    own_redis: servers.Redis,
) -> None:
    client = redis_client.connect(own_redis.url, socket_connect_timeout=0.5)
    await client.ping()
    own_redis.process.stop()
    started = time.monotonic()
    with pytest.raises(RedisConnectionError):
        await client.lpush("down-q", b"x")
    assert time.monotonic() - started < 5.0  # 3 retries, backoff capped at 1 s each
    await client.aclose()


async def test_sync_producer_from_a_tracked_cron_job_carries_the_run_correlation_id(
    redis_server: servers.Redis, queue_name: str, metric_view: MetricView
) -> None:
    """A sync job (BackgroundScheduler thread) pushes with a sync client: the consumer sees
    the job run's own correlation_id."""
    import redis as sync_redis
    from apscheduler.schedulers.background import BackgroundScheduler

    from otel_assist.history.shipper import HistorySettings, HistoryShipper
    from otel_assist.jobs import track_scheduler
    from otel_assist.queues import SyncQueueProducer

    sync_client = redis_metrics.instrument(sync_redis.Redis.from_url(redis_server.url))
    producer = SyncQueueProducer(sync_client, queue_name, source="cron", settings=NO_HISTORY)
    ids: list[str | None] = []

    def remind() -> None:
        ids.append(get_correlation_id())
        producer.push({"remind": True}, type="trigger", user_id=5)

    scheduler = BackgroundScheduler()
    track_scheduler(scheduler, shipper=HistoryShipper(HistorySettings()))
    scheduler.add_job(remind, id="reminder_5")
    scheduler.start()
    try:
        client = aredis.Redis.from_url(redis_server.url)
        msg = await QueueConsumer(client, queue_name, settings=NO_HISTORY).get(5.0)
    finally:
        scheduler.shutdown(wait=True)
    assert msg is not None and msg.source == "cron" and msg.user_id == 5
    assert ids and ids[0] and msg.correlation_id == ids[0]
    count, *_ = metric_view.histogram(
        "db.client.operation.duration", **{"db.operation.name": "LPUSH"}
    )
    assert count == 1
    await client.aclose()
