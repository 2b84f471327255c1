"""The simulated Telegram bot: synthetic users send messages, each pushed to
``to_secretary`` with a new correlation_id (as a webhook request would start one)."""

from __future__ import annotations

from redis.exceptions import RedisError

from otel_assist.correlation import correlation_scope
from otel_assist.logs import get_logger
from otel_assist.queues import QueueProducer
from otel_assist_demo.synthetic import message_text
from otel_assist_demo.world import TO_SECRETARY, World

log = get_logger("otel_assist_demo.telegram_bot", component="telegram_bot")


async def run(world: World) -> None:
    """Poisson arrivals at ``world.rate`` messages per second until the demo stops."""
    producer = QueueProducer(world.redis, TO_SECRETARY, source="telegram")
    while not await world.sleep(world.rng.expovariate(world.rate)):
        user = world.rng.choice(world.users)
        text, fact = message_text(world.rng, user)
        payload: dict[str, object] = {"chat_id": user.chat_id, "from": user.name, "text": text}
        if fact:
            payload["fact"] = fact  # what the fake LLM will "extract" and remember
        with correlation_scope():
            try:
                message_id = await producer.push(payload, type="user_message", user_id=user.user_id)
            except RedisError as exc:
                log.error("could not enqueue user message", event_type="error", error=repr(exc))
                continue
            log.info(
                "user message received",
                event_type="queue_push",
                user_id=user.user_id,
                message_id=message_id,
                queue_name=TO_SECRETARY,
            )
