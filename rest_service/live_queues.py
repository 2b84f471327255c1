"""The live state of Redis list queues: length and the oldest message's age.

Producers LPUSH and consumers BRPOP, so the oldest message sits at index -1. Its age comes
from the envelope's ``enqueued_at`` (unix seconds); a legacy message without an envelope has
no age (reported as null with ``oldest_is_legacy``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from otel_assist.queues.redis_client import connect
from rest_service.core.errors import UnavailableError
from rest_service.schemas import QueueCurrent


def envelope_enqueued_at(raw: bytes | str | None) -> float | None:
    """The envelope's enqueue time, or None for anything that is not an envelope."""
    if raw is None:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or "v" not in data:
        return None
    value = data.get("enqueued_at")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class LiveQueues:
    """A small Redis client with short timeouts: a slow Redis must not hang the API."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.client: Redis | None = (
            connect(url, socket_connect_timeout=1.0, socket_timeout=2.0) if url else None
        )

    async def current(self, names: Sequence[str]) -> list[QueueCurrent]:
        if self.client is None:
            raise UnavailableError("Redis is not configured (set REDIS_URL)")
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.llen(name)
                    pipe.lindex(name, -1)
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise UnavailableError(f"Redis is unreachable: {type(exc).__name__}") from exc
        now = time.time()
        out = []
        for i, name in enumerate(names):
            length, oldest = int(replies[2 * i] or 0), replies[2 * i + 1]
            enqueued = envelope_enqueued_at(oldest)
            out.append(
                QueueCurrent(
                    queue_name=name,
                    length=length,
                    oldest_message_age_seconds=max(0.0, now - enqueued) if enqueued else None,
                    oldest_is_legacy=oldest is not None and enqueued is None,
                )
            )
        return out

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
