"""What the simulated services share: options, the seeded RNG, clients and the stop flag.

In production each service would own its Redis client and HTTP client; sharing them here
only saves sockets, every call still goes over the network to Redis and rest_service.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from otel_assist_demo.synthetic import User

TO_SECRETARY = "to_secretary"
TO_TELEGRAM = "to_telegram"
QUEUES = (TO_SECRETARY, TO_TELEGRAM)


@dataclass
class World:
    rng: random.Random
    rate: float
    redis: Any
    api: httpx.AsyncClient
    users: list[User]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # (user_id, fact) pairs stored or being stored, by any component: a user who says "I
    # play the cello" twice, or whose fact the memory-extraction job also finds, has one
    # fact on the memory page, not two (which looked like a bug).
    known_facts: set[tuple[int, str]] = field(default_factory=set)

    async def remember(self, user_id: int, fact: str, source: str) -> bool:
        """Store ``fact`` for ``user_id`` unless it is known (this run, or an earlier one's
        SQLite file); True when it was stored. HTTP errors propagate."""
        key = (user_id, fact.casefold())
        if key in self.known_facts:
            return False
        self.known_facts.add(key)  # before any await: concurrent callers save it once
        found = await self.api.get(
            f"/memories/user/{user_id}", params={"q": fact[:50], "limit": 20}
        )
        found.raise_for_status()
        if any(str(r.get("content", "")).casefold() == key[1] for r in found.json()):
            return False
        resp = await self.api.post(
            "/memories", json={"user_id": user_id, "content": fact, "source": source}
        )
        resp.raise_for_status()
        return True

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless the demo is stopping; True when it is."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), max(0.0, seconds))
        return self.stopping.is_set()

    def latency(self, median_s: float, spread: float = 0.5) -> float:
        """A log-normal latency around ``median_s`` (long right tail, like real calls)."""
        return self.rng.lognormvariate(0.0, spread) * median_s
