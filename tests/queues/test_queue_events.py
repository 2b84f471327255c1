"""queue_push / queue_pop log events (docs/event-types.md) on a real Redis: off (DEBUG)
by default, one line each when switched on, carrying the message's correlation_id."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis.asyncio as aredis

from otel_assist.correlation import correlation_scope
from otel_assist.queues import Message, QueueConsumer, QueueProducer, QueueSettings
from otel_assist.testing import Capture
from tests import servers

NO_HISTORY = QueueSettings(history=False, block_timeout_s=0.2, sample_interval_s=0.1)


@pytest.fixture
def capture(events: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Capture]:
    monkeypatch.setenv("OTEL_ASSIST_LOG_EVENTS", events)
    cap = Capture("queue_events")
    try:
        yield cap
    finally:
        cap.close()


@pytest.mark.parametrize("events", ["default", "queue_push,queue_pop"])
async def test_push_and_pop_lines(
    events: str, capture: Capture, redis_server: servers.Redis, queue_name: str
) -> None:
    on = events != "default"
    client = aredis.Redis.from_url(redis_server.url)
    try:
        producer = QueueProducer(client, queue_name, source="telegram", settings=NO_HISTORY)
        consumer = QueueConsumer(client, queue_name, settings=NO_HISTORY)
        seen: list[str | None] = []

        async def handler(msg: Message) -> None:
            seen.append(msg.id)

        with correlation_scope() as cid:
            mid = await producer.push({"text": "hi"}, type="human", user_id=5)
        msg = await consumer.get(block_s=2)
        assert msg is not None
        assert await consumer.process(msg, handler)
    finally:
        await client.aclose()
    assert seen == [mid]
    pushes = [ln for ln in capture.json_lines() if ln.get("event_type") == "queue_push"]
    pops = [ln for ln in capture.json_lines() if ln.get("event_type") == "queue_pop"]
    if not on:
        assert pushes == [] and pops == []
        return
    [push] = pushes
    [pop] = pops
    assert push["message_id"] == pop["message_id"] == mid
    assert push["correlation_id"] == pop["correlation_id"] == cid
    assert push["queue_name"] == pop["queue_name"] == queue_name
    assert push["user_id"] == pop["user_id"] == 5 and pop["wait_ms"] >= 0
    assert push["level"] == "info"
