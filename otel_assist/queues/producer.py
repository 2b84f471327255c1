"""The instrumented queue producer: LPUSH of enveloped messages onto a Redis list
(``redis.asyncio``; ``SyncQueueProducer`` pushes with a sync ``redis.Redis``).

The oldest message is therefore at index -1. Three lines instrument a service::

    producer = QueueProducer(redis, "to_secretary", source="telegram")
    await producer.push({"text": "hi"}, type="human", user_id=42)
    await QueueConsumer(redis, "to_secretary", handle).run()

**push** wraps the payload in the envelope (:mod:`otel_assist.queues.envelope`) with the
current baggage (the header string is cached per context object, contexts being
immutable), LPUSHes it, counts ``queue_messages_total{direction=push}`` (per-message
measurements go through :mod:`otel_assist.metrics.preaggregation`, plain Python) and hands a
history event to the shipper (a tuple appended to a deque; the shipper thread builds the
event from it). A Redis error propagates to the caller unchanged and is counted in
``queue_errors_total``. The producer only calls ``execute_command("LPUSH", ...)`` on the
client it is given (what redis-py's ``lpush`` does, one frame fewer per message), so it
imports nothing from redis-py itself.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opentelemetry import context

from otel_assist.correlation import (
    BAGGAGE_KEY,
    MAX_LENGTH,
    baggage_entries,
    baggage_header,
    context_with_correlation_id,
    current_context,
    is_valid,
    new_correlation_id,
)
from otel_assist.event_types import LEVELS, LogEventType, emit
from otel_assist.history.payload import queue_push_event
from otel_assist.history.shipper import HistoryShipper, shipper_for
from otel_assist.logs.configure import get_logger
from otel_assist.queues import envelope as qe
from otel_assist.queues.instruments import _count_error, _Instruments
from otel_assist.settings import QueueSettings

_log = get_logger("otel_assist.queues")
_UNSET: Any = object()
_PREFIX = BAGGAGE_KEY + "="
_PUSH = LogEventType.QUEUE_PUSH


def _header_for(ctx: context.Context, cid: str) -> str | None:
    """W3C baggage header of ``ctx``. Fast path for the usual case, baggage holding only a
    valid correlation_id (no escaping needed); anything else goes through the propagator."""
    entries = baggage_entries(ctx)
    if len(entries) == 1 and entries.get(BAGGAGE_KEY) == cid and is_valid(cid):
        return _PREFIX + cid
    return baggage_header(ctx)


def _baggage_of(ctx: context.Context) -> tuple[str | None, str | None]:
    """``(header, correlation_id)`` of ``ctx`` with one baggage lookup (this runs for every
    message pushed from a new context); ``(None, None)`` when it holds no correlation_id.
    Same result as ``_header_for(ctx, get_correlation_id(ctx))``."""
    entries = baggage_entries(ctx)
    cid = entries.get(BAGGAGE_KEY)
    if not isinstance(cid, str):
        return None, None
    # is_valid's own fast path inlined (hex ids), the function for anything else.
    if len(entries) == 1 and (
        (len(cid) <= MAX_LENGTH and cid.isascii() and cid.isalnum()) or is_valid(cid)
    ):
        return _PREFIX + cid, cid
    return baggage_header(ctx), cid


class QueueProducer:
    """LPUSH enveloped messages onto one Redis list (``redis.asyncio.Redis``)."""

    def __init__(
        self,
        redis: Any,
        queue_name: str,
        *,
        source: str | None = None,
        shipper: HistoryShipper | None = None,
        settings: QueueSettings | None = None,
    ) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self.source = source
        self.settings = settings or QueueSettings.from_env()
        self.shipper = shipper_for(shipper, self.settings.history)
        self._m = _Instruments(queue_name)
        self._ctx: Any = _UNSET
        self._header: str | None = None
        self._cid = ""

    def _baggage(self) -> tuple[str | None, str]:
        """The current baggage header and correlation_id, cached per context object
        (contexts are immutable, so the same object always yields the same header)."""
        ctx = current_context()
        if ctx is self._ctx:
            return self._header, self._cid
        header, cid = _baggage_of(ctx)
        if cid is None:
            # Every message carries an id so producer and consumer rows pair up; a context
            # without one gets a fresh id per message (not cached).
            cid = new_correlation_id()
            return _header_for(context_with_correlation_id(cid, ctx), cid), cid
        self._ctx, self._header, self._cid = ctx, header, cid
        return header, cid

    def _prepare(
        self, payload: Any, mtype: str, user_id: int | None, source: str | None
    ) -> tuple[str, float, bytes, str, str | None]:
        """``(id, enqueued_at, bytes, correlation_id, source)`` of the message to push (no
        Envelope object: this runs for every message)."""
        header, cid = self._baggage()
        mid = qe.new_message_id()
        now = time.time()
        source = source or self.source
        return (
            mid,
            now,
            qe.encode_message(mid, now, payload, mtype, source, user_id, header),
            cid,
            source,
        )

    def _pushed(
        self,
        mid: str,
        now: float,
        mtype: str,
        source: str | None,
        user_id: int | None,
        data: bytes,
        cid: str,
    ) -> None:
        self._m.pushed.add(1)
        if _PUSH in LEVELS.info or LEVELS.debug:  # wanted(), inlined: off by default
            emit(
                _log,
                _PUSH,
                "queue push",
                queue_name=self.queue_name,
                message_id=mid,
                message_type=mtype,
                source=source,
                user_id=user_id,
                correlation_id=cid,
                size_bytes=len(data),
            )
        shipper = self.shipper
        if shipper is not None:
            # Deferred: the shipper thread builds the event (queue_push_event's order).
            shipper.submit(
                "queue",
                (queue_push_event, mid, self.queue_name, mtype, source, user_id, cid, now, data),
            )

    async def push(
        self,
        payload: Any,
        *,
        type: str = "message",
        user_id: int | None = None,
        source: str | None = None,
    ) -> str:
        """Enqueue one message and return its id. Redis errors propagate unchanged."""
        mid, now, data, cid, source = self._prepare(payload, type, user_id, source)
        try:
            # What redis-py's lpush() does, without its frame (this runs per message).
            await self.redis.execute_command("LPUSH", self.queue_name, data)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                _count_error(self.queue_name, "push", exc)
            raise
        self._pushed(mid, now, type, source, user_id, data, cid)
        return mid


class SyncQueueProducer(QueueProducer):
    """The same producer for a synchronous ``redis.Redis`` client (cron jobs on a
    BackgroundScheduler, scripts): ``SyncQueueProducer(redis, "to_secretary").push(...)``."""

    def push(  # type: ignore[override]
        self,
        payload: Any,
        *,
        type: str = "message",
        user_id: int | None = None,
        source: str | None = None,
    ) -> str:
        """Enqueue one message and return its id. Redis errors propagate unchanged."""
        mid, now, data, cid, source = self._prepare(payload, type, user_id, source)
        try:
            self.redis.execute_command("LPUSH", self.queue_name, data)
        except Exception as exc:
            _count_error(self.queue_name, "push", exc)
            raise
        self._pushed(mid, now, type, source, user_id, data, cid)
        return mid
