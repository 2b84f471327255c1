"""A producer and a consumer on one Redis list, correlation_id carried through the queue.

Needs the ``queues`` extra (``pip install 'otel-assist[queues]'``) and a Redis server::

    REDIS_URL=redis://127.0.0.1:6379/0 python examples/queue_worker.py --messages 5

The producer pushes enveloped messages (each under its own correlation_id); the consumer
handles them with the producer's correlation_id attached, so both sides' log lines share
it. The script stops once every message it pushed has been handled.
"""

from __future__ import annotations

import argparse
import asyncio
import os

import otel_assist
from otel_assist import correlation_scope
from otel_assist.queues import Message, QueueConsumer, QueueProducer, redis_client

log = otel_assist.get_logger()


async def main(redis_url: str, queue: str, count: int) -> None:
    redis = redis_client.connect(redis_url)  # redis.asyncio client with command metrics
    producer = QueueProducer(redis, queue, source="example")
    handled: list[str] = []

    async def handle(msg: Message) -> None:
        # The producer's correlation_id is attached here: this line carries it.
        log.info("message handled", text=msg.payload["text"], user_id=msg.user_id)
        handled.append(msg.id)
        if len(handled) == count:
            consumer.stop()

    consumer = QueueConsumer(redis, queue, handle)
    worker = asyncio.create_task(consumer.run())
    for i in range(count):
        with correlation_scope():  # a new correlation_id for each message
            await producer.push({"text": f"message {i}"}, type="human", user_id=42)
            log.info("message pushed", number=i)
    await asyncio.wait_for(worker, timeout=30)
    await redis.aclose()
    print(f"handled {len(handled)} of {count} messages")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5, help="how many to push (default 5)")
    parser.add_argument(
        "--queue", default="example_queue", help="Redis list (default example_queue)"
    )
    args = parser.parse_args()
    otel_assist.configure("queue_example")
    asyncio.run(
        main(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), args.queue, args.messages)
    )
