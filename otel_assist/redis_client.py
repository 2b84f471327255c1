"""The import path ``otel_assist.redis_client`` (``from otel_assist import redis_client``)
from before the package was laid out by concern.

The clients live in :mod:`otel_assist.queues.redis_client`; code written against the old
path keeps working through these re-exports. Needs the ``[queues]`` extra, as before.
"""

from otel_assist.queues.redis_client import (
    HEALTH_CHECK_INTERVAL_S,
    RETRIES,
    connect,
    connect_sync,
)

__all__ = ["HEALTH_CHECK_INTERVAL_S", "RETRIES", "connect", "connect_sync"]
