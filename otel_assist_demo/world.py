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

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless the demo is stopping; True when it is."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), max(0.0, seconds))
        return self.stopping.is_set()

    def latency(self, median_s: float, spread: float = 0.5) -> float:
        """A log-normal latency around ``median_s`` (long right tail, like real calls)."""
        return self.rng.lognormvariate(0.0, spread) * median_s
