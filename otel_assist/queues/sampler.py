"""``queue_length`` and ``queue_oldest_message_age``: sampled by one task per consumer (LLEN +
LINDEX -1 for each queue in one pipeline every ``OTEL_ASSIST_QUEUE_SAMPLE_INTERVAL_MS``),
never from a Redis call per push."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Any

from otel_assist.extras import MissingExtraError

try:
    from redis.exceptions import RedisError
except ModuleNotFoundError as exc:  # one line naming the extra, not "No module named"
    raise MissingExtraError("otel_assist.queues", "queues", (exc.name or "redis",)) from None

from otel_assist.metrics import instruments as metrics
from otel_assist.queues import envelope as qe


async def sample_once(redis: Any, queue_names: Iterable[str]) -> dict[str, tuple[int, float]]:
    """Set queue_length and queue_oldest_message_age for each queue (one pipeline)."""
    names = list(queue_names)
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.llen(name)
            pipe.lindex(name, -1)
        replies = await pipe.execute()
    now = time.time()
    cat = metrics.catalog()
    out: dict[str, tuple[int, float]] = {}
    for i, name in enumerate(names):
        length = int(replies[2 * i] or 0)
        enqueued = qe.enqueued_at_of(replies[2 * i + 1]) if length else None
        age = max(0.0, now - enqueued) if enqueued is not None else 0.0
        cat["queue_length"].set(length, queue_name=name)
        cat["queue_oldest_message_age"].set(age, queue_name=name)
        out[name] = (length, age)
    return out


async def sample_forever(redis: Any, queue_names: Iterable[str], interval_s: float) -> None:
    """The sampler task: errors (Redis down) skip a sample, never end the task."""
    names = list(queue_names)
    while True:
        with contextlib.suppress(RedisError, OSError):
            await sample_once(redis, names)
        await asyncio.sleep(interval_s)
