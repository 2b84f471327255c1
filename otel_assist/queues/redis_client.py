"""Redis clients that survive a Redis restart, with command metrics already on.

``redis.asyncio.Redis.from_url()`` builds pooled connections with **no retries**: after
Redis restarts, the first command on each pooled connection that was open before the
restart fails with "Connection closed by server", even though Redis is back. A producer
then loses a push it could have made, and ``/queues/current`` answers 503 once per stale
connection. ``connect()`` builds the same client with:

* a retry on ``ConnectionError`` only (3 retries, jittered backoff from 50 ms capped at
  1 s): a stale socket is dropped and the command is sent again on a fresh one. Read
  timeouts are *not* retried, because the server may already have run the command and a
  second LPUSH would duplicate the message;
* a health check (PING before a command on a connection idle for 30 s), so connections
  that died quietly (a NAT or load balancer dropping idle sockets) are replaced before use;
* ``redis_metrics.instrument()`` applied, so ``db_client_operation_duration_seconds``
  covers every command.

Any keyword argument overrides a default (``socket_timeout=2.0``, ``decode_responses=True``,
``retry=...``).
"""

from __future__ import annotations

from typing import Any

from otel_assist.extras import MissingExtraError

try:
    import redis
    import redis.asyncio as aredis
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
except ModuleNotFoundError as exc:  # one line naming the extra, not "No module named"
    raise MissingExtraError(
        "otel_assist.queues.redis_client", "queues", (exc.name or "redis",)
    ) from None

from otel_assist.metrics import redis as redis_metrics

RETRIES = 3
HEALTH_CHECK_INTERVAL_S = 30


def _defaults(retry_class: type[Any], overrides: dict[str, Any]) -> dict[str, Any]:
    backoff = ExponentialWithJitterBackoff(base=0.05, cap=1.0)
    kwargs: dict[str, Any] = {
        "retry": retry_class(backoff, RETRIES, supported_errors=(RedisConnectionError,)),
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
    }
    kwargs.update(overrides)
    return kwargs


def connect(url: str, **overrides: Any) -> aredis.Redis:
    """An instrumented ``redis.asyncio`` client for ``url`` that retries stale connections."""
    from redis.asyncio.retry import Retry

    client = aredis.Redis.from_url(url, **_defaults(Retry, overrides))
    return redis_metrics.instrument(client)


def connect_sync(url: str, **overrides: Any) -> redis.Redis:
    """The same for a synchronous ``redis.Redis`` (cron jobs on a BackgroundScheduler)."""
    from redis.retry import Retry

    client = redis.Redis.from_url(url, **_defaults(Retry, overrides))
    return redis_metrics.instrument(client)
