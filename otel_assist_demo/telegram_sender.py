"""The simulated Telegram sender: consumes ``to_telegram`` and "sends" each message."""

from __future__ import annotations

from otel_assist.logs import get_logger
from otel_assist.queues import Message, QueueConsumer
from otel_assist_demo.world import TO_TELEGRAM, World

log = get_logger("otel_assist_demo.telegram_sender", component="telegram_sender")


class TelegramSendError(RuntimeError):
    """Telegram's API refused the message (simulated: chat not found, rate limited)."""


def consumer(world: World) -> QueueConsumer:
    async def send(msg: Message) -> None:
        await world.sleep(world.latency(0.04))
        if world.rng.random() < 0.01:
            raise TelegramSendError("Bad Request: chat not found")
        payload = msg.payload if isinstance(msg.payload, dict) else {}
        log.info(
            "message sent to telegram",
            event_type="response",
            user_id=msg.user_id,
            chat_id=payload.get("chat_id"),
            message_type=msg.type,
            wait_ms=round((msg.wait_s or 0.0) * 1000, 1),
        )

    return QueueConsumer(world.redis, TO_TELEGRAM, send, source="assistant")
