"""An unmodified program using redis-py directly: no otel_assist import anywhere.

Run under ``opentelemetry-instrument``; prints one JSON object on its last stdout line with
what the test checks: the Prometheus exposition of this process's metrics, whether the
client class was wrapped by the stock (wrapt-based) instrumentation, and the global tracer
provider's class.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import redis
import redis.asyncio as aredis
from opentelemetry import trace
from prometheus_client import REGISTRY, generate_latest


async def use_async(url: str) -> None:
    client = aredis.Redis.from_url(url)
    await client.lpush("foreign:a", "x")
    await client.rpop("foreign:a")
    async with client.pipeline(transaction=False) as pipe:
        pipe.lpush("foreign:a", "y").rpop("foreign:a")
        await pipe.execute()
    await client.aclose()


def main() -> None:
    url = os.environ["REDIS_URL"]
    client = redis.Redis.from_url(url)
    for _ in range(5):
        client.set("foreign:k", "v")
    client.get("foreign:k")
    with client.pipeline() as pipe:
        pipe.set("foreign:k", "w").get("foreign:k")
        pipe.execute()
    asyncio.run(use_async(url))
    report = {
        "metrics": generate_latest(REGISTRY).decode(),
        "stock_wrapped": hasattr(redis.Redis.execute_command, "__wrapped__"),
        "tracer_provider": type(trace.get_tracer_provider()).__name__,
    }
    sys.stdout.write("\n" + json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
