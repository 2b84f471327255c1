"""A producer process for the SIGKILL test: ``python -m tests.queues.history_producer
REDIS_URL QUEUE N INTERVAL``.

Pushes N messages (0: until SIGTERM) with history on (configured from the environment),
printing ``<message id> <unix time>`` after each push returned, i.e. once the event was
acknowledged to the caller; exits cleanly on SIGTERM, shutting the shipper down.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import redis.asyncio as aredis

import otel_assist
from otel_assist.history import shipper as history
from otel_assist.queues import QueueProducer


async def produce(url: str, queue: str, n: int, interval: float) -> None:
    client = aredis.Redis.from_url(url)
    producer = QueueProducer(client, queue, source="sigkill")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    i = 0
    while not stop.is_set() and (n == 0 or i < n):
        mid = await producer.push({"i": i}, type="test")
        sys.stdout.write(f"{mid} {time.time():.6f}\n")
        sys.stdout.flush()
        i += 1
        await asyncio.sleep(interval)
    if not stop.is_set():
        print("DONE", flush=True)
        await stop.wait()
    history.default_shipper().shutdown(timeout_s=5.0)
    await client.aclose()


def main() -> None:
    otel_assist.configure(
        "sigkill-producer", log_format="json", logs_exporters=(), metrics_exporters=()
    )
    url, queue, n, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    asyncio.run(produce(url, queue, n, interval))


if __name__ == "__main__":
    main()
