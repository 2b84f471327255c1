"""Redis queues: the envelope, the instrumented producer and consumer, the length sampler,
and the Redis client/instrumentor that time every command.

``envelope`` needs nothing but orjson, so it stays importable without the [queues] extra
(jobs use its message ids); the names below need redis-py and are loaded on first use, so
``from otel_assist.queues import QueueProducer`` without the extra names the extra
instead of failing with a bare ImportError.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_assist.queues.producer import (
        Handler,
        Message,
        QueueConsumer,
        QueueProducer,
        QueueSettings,
        SyncQueueProducer,
        sample_forever,
        sample_once,
    )

# public name -> the module that defines it
_LAZY = {
    "Handler": "otel_assist.queues.producer",
    "Message": "otel_assist.queues.producer",
    "QueueConsumer": "otel_assist.queues.producer",
    "QueueProducer": "otel_assist.queues.producer",
    "QueueSettings": "otel_assist.queues.producer",
    "SyncQueueProducer": "otel_assist.queues.producer",
    "sample_forever": "otel_assist.queues.producer",
    "sample_once": "otel_assist.queues.producer",
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
