"""A separate service process for the queue tests: ``python -m tests.queues.worker MODE ...``.

``consume QUEUE N``: consume N messages, logging one JSON line per message from inside
the handler (the test reads the correlation_id on those lines).
``produce QUEUE N``: push N messages with history on (the spool and restart test); prints
each message id; exits cleanly on SIGTERM, flushing the shipper (spooling what it cannot
send).
"""

from __future__ import annotations

import asyncio
import signal
import sys

import redis.asyncio as aredis

import otel_assist
from otel_assist.correlation import correlation_scope
from otel_assist.history import shipper as history
from otel_assist.queues import Message, QueueConsumer, QueueProducer


async def consume(url: str, queue: str, n: int) -> None:
    log = otel_assist.get_logger("worker")
    client = aredis.Redis.from_url(url)
    done = 0
    consumer: QueueConsumer

    async def handle(msg: Message) -> None:
        nonlocal done
        log.info("handled message", message_id=msg.id, payload=msg.payload)
        done += 1
        if done >= n:
            consumer.stop()

    consumer = QueueConsumer(client, queue, handle, sample=False)
    print("READY", flush=True)
    await consumer.run()
    await client.aclose()


async def produce(url: str, queue: str, n: int, interval: float) -> None:
    client = aredis.Redis.from_url(url)
    producer = QueueProducer(client, queue, source="worker")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    for i in range(n):
        if stop.is_set():
            break
        with correlation_scope():
            mid = await producer.push({"i": i}, type="test")
        print(mid, flush=True)
        if interval:
            await asyncio.sleep(interval)
    if not stop.is_set():
        print("DONE", flush=True)
        await stop.wait()
    history.default_shipper().shutdown(timeout_s=2.0)
    await client.aclose()


def main() -> None:
    otel_assist.configure(
        "queue-worker", log_format="json", logs_exporters=(), metrics_exporters=()
    )
    mode, url, queue, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if mode == "consume":
        asyncio.run(consume(url, queue, n))
    else:
        interval = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
        asyncio.run(produce(url, queue, n, interval))


if __name__ == "__main__":
    main()
