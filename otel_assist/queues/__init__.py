"""Redis queues, one module per part: ``envelope`` (the message format), ``producer``
(LPUSH), ``consumer`` (BRPOP, handler, dead letters), ``sampler`` (queue length and oldest
age), ``settings`` (``OTEL_ASSIST_QUEUE_*``), ``instruments`` (the queue metrics both ends
share), and ``redis_client`` / ``redis_instrumentor`` (every Redis command timed).

``envelope`` needs nothing but orjson, so it stays importable without the [queues] extra
(jobs use its message ids); the names below are loaded on first use, so
``from otel_assist.queues import QueueConsumer`` without the extra names the extra instead
of failing with a bare ImportError.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_assist.queues.consumer import Handler, Message, QueueConsumer
    from otel_assist.queues.producer import QueueProducer, SyncQueueProducer
    from otel_assist.queues.sampler import sample_forever, sample_once
    from otel_assist.settings import QueueSettings

# public name -> the module that defines it
_LAZY = {
    "Handler": "otel_assist.queues.consumer",
    "Message": "otel_assist.queues.consumer",
    "QueueConsumer": "otel_assist.queues.consumer",
    "QueueProducer": "otel_assist.queues.producer",
    "QueueSettings": "otel_assist.settings",
    "SyncQueueProducer": "otel_assist.queues.producer",
    "sample_forever": "otel_assist.queues.sampler",
    "sample_once": "otel_assist.queues.sampler",
}

__all__ = [
    "Handler",
    "Message",
    "QueueConsumer",
    "QueueProducer",
    "QueueSettings",
    "SyncQueueProducer",
    "sample_forever",
    "sample_once",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_assist.queues' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
