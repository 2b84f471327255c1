"""The instrumented queue consumer: BRPOP from a Redis list (``redis.asyncio``), the message
with its producer's baggage attached, the handler timed and counted.

**consume** BRPOPs, classifies the element (envelope, legacy, invalid, too large), records
the wait time (dequeue - enqueue), attaches the message's baggage so every log line of the
handler carries the producer's correlation_id, times the handler and counts
``messages_processed_total{source,status}``. Garbage is counted in
``queue_invalid_messages_total`` and moved to a dead-letter list or handed on raw; the loop
survives handler exceptions and reconnects with backoff when Redis goes away. A consumer
also starts the queue's length sampler (:mod:`otel_assist.queues.sampler`) unless told not
to.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry import context

from otel_assist.extras import MissingExtraError
from otel_assist.retry_backoff import jittered

try:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ModuleNotFoundError as exc:  # one line naming the extra, not "No module named"
    raise MissingExtraError("otel_assist.queues", "queues", (exc.name or "redis",)) from None

from otel_assist.correlation import (
    BAGGAGE_KEY,
    MAX_LENGTH,
    attach,
    context_for_id,
    context_from_baggage_header,
    context_with_correlation_id,
    detach,
    get_correlation_id,
    is_valid,
    new_correlation_id,
)
from otel_assist.event_types import LEVELS, LogEventType, emit
from otel_assist.history.payload import queue_pop_event
from otel_assist.history.shipper import HistoryShipper, shipper_for
from otel_assist.logs.configure import get_logger
from otel_assist.metrics import instruments as metrics
from otel_assist.queues import envelope as qe
from otel_assist.queues.instruments import _count_error, _Instruments
from otel_assist.queues.sampler import sample_forever
from otel_assist.settings import QueueSettings

_log = get_logger("otel_assist.queues")
_PREFIX = BAGGAGE_KEY + "="
_PREFIX_LEN = len(_PREFIX)
_POP = LogEventType.QUEUE_POP


def _context_for(header: str | None) -> tuple[context.Context, str]:
    """Inverse of :func:`_header_for`, with the same fast path; always holds an id.
    Returns the context and its correlation_id (known here without a baggage lookup on the
    fast path, which runs for every message)."""
    if header and header.startswith(_PREFIX):
        value = header[_PREFIX_LEN:]
        # is_valid's own fast path inlined (hex ids), the function for anything else.
        if (len(value) <= MAX_LENGTH and value.isascii() and value.isalnum()) or is_valid(value):
            return context_for_id(value), value
    ctx = context_from_baggage_header(header)
    cid = get_correlation_id(ctx)
    if cid is None:
        cid = new_correlation_id()
        ctx = context_with_correlation_id(cid, ctx)
    return ctx, cid


@dataclass(slots=True)
class Message:
    """One dequeued element. ``invalid_reason`` is None for a valid envelope, else
    legacy / invalid_json / invalid_envelope / too_large (``payload`` is then the parsed
    JSON for legacy and invalid_envelope, the raw bytes otherwise)."""

    queue_name: str
    payload: Any
    raw: bytes
    dequeued_at: float
    id: str | None = None
    type: str = "message"
    source: str | None = None
    user_id: int | None = None
    enqueued_at: float | None = None
    baggage: str | None = None
    invalid_reason: str | None = None
    _ctx: context.Context | None = None
    _cid: str = ""

    @property
    def wait_s(self) -> float | None:
        if self.enqueued_at is None:
            return None
        return max(0.0, self.dequeued_at - self.enqueued_at)

    def context(self) -> context.Context:
        """The producer's baggage (a fresh correlation_id when the message had none);
        parsed once per message."""
        if self._ctx is None:
            self._ctx, self._cid = _context_for(self.baggage)
        return self._ctx

    @property
    def correlation_id(self) -> str | None:
        if self._ctx is None:
            self._ctx, self._cid = _context_for(self.baggage)
        return self._cid

    @contextlib.contextmanager
    def attached(self) -> Iterator[str]:
        """Attach the message's baggage for a block; yields its correlation_id."""
        ctx = self.context()
        token = context.attach(ctx)
        try:
            yield get_correlation_id(ctx) or ""
        finally:
            context.detach(token)


Handler = Callable[[Message], Awaitable[Any]]


class QueueConsumer:
    """BRPOP messages from one Redis list and hand them to ``handler`` with their baggage
    attached. ``run()`` is the loop; ``get()`` + ``process()`` are the parts for callers
    with their own loop."""

    def __init__(
        self,
        redis: Any,
        queue_name: str,
        handler: Handler | None = None,
        *,
        source: str | None = None,
        dead_letter: str | None = None,
        shipper: HistoryShipper | None = None,
        settings: QueueSettings | None = None,
        sample: bool = True,
    ) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self.handler = handler
        self.source = source
        self.settings = settings or QueueSettings.from_env()
        suffix = self.settings.dead_letter_suffix
        self.dead_letter = dead_letter or (queue_name + suffix if suffix else None)
        self.shipper = shipper_for(shipper, self.settings.history)
        self.sample = sample
        self._m = _Instruments(queue_name)
        self._stopping = asyncio.Event()
        self.connected = True

    def stop(self) -> None:
        self._stopping.set()

    async def get(self, block_s: float | None = None) -> Message | None:
        """BRPOP one element (None on timeout or when it was dead-lettered)."""
        block = self.settings.block_timeout_s if block_s is None else block_s
        # What redis-py's brpop() does, without its frame (this runs per message).
        reply = await self.redis.execute_command("BRPOP", self.queue_name, block)
        if reply is None:
            return None
        raw = reply[1]
        if isinstance(raw, str):
            raw = raw.encode()
        msg = self._accept(raw)
        if msg.invalid_reason is None or msg.invalid_reason == "legacy":
            return msg
        _log.warning(
            "invalid queue message",
            event_type="queue_pop",
            queue_name=self.queue_name,
            reason=msg.invalid_reason,
            size_bytes=len(raw),
            dead_letter=self.dead_letter,
        )
        if self.dead_letter:
            await self._dead_letter(raw)
            return None
        return msg

    def _accept(self, raw: bytes) -> Message:
        """Classify, count and record one element (synchronous: no coroutine per message;
        :meth:`get` logs and dead-letters what is invalid)."""
        now = time.time()
        m = self._m
        m.popped.add(1)
        fields = qe.decode_fields(raw, self.settings.max_message_bytes)
        if not isinstance(fields, tuple):
            return self._accept_invalid(raw, now, fields)
        # A valid envelope, the per-message path: no Envelope object, the baggage parsed
        # now (the history event needs its correlation_id), the event deferred.
        mid, enqueued, payload, mtype, source, user_id, bag = fields
        ctx, cid = _context_for(bag)
        msg = Message(
            self.queue_name, payload, raw, now, mid, mtype, source, user_id, enqueued, bag,
            None, ctx, cid,
        )  # fmt: skip
        m.wait.record(now - enqueued if now > enqueued else 0.0)
        shipper = self.shipper
        if shipper is not None:
            # Deferred: the shipper thread builds the event (queue_pop_event's order). An
            # envelope's payload is stored once, on its push row (raw is None here).
            shipper.submit(
                "queue",
                (
                    queue_pop_event, mid + ":pop", mid, self.queue_name, mtype, source,
                    user_id, cid, enqueued, now, None,
                ),
            )  # fmt: skip
        return msg

    def _accept_invalid(self, raw: bytes, now: float, decoded: qe.Decoded) -> Message:
        """Count and record an element that is not a valid envelope (legacy or garbage)."""
        reason = decoded.reason or "invalid_json"
        metrics.catalog()["queue_invalid_messages"].add(
            1, queue_name=self.queue_name, reason=reason
        )
        data = decoded.data if reason in ("legacy", "invalid_envelope") else raw
        mtype = "legacy" if reason == "legacy" else "invalid"
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            mtype = data["type"][:64] or mtype
        msg = Message(self.queue_name, data, raw, now, type=mtype, invalid_reason=reason)
        if self.shipper is not None:
            # A message from an uninstrumented producer has no push row, so its pop row
            # keeps the payload (an envelope's is stored once, on its push row).
            kept = raw if reason != "too_large" else raw[:65536]
            self.shipper.submit(
                "queue",
                (
                    queue_pop_event, qe.new_message_id() + ":pop", None, self.queue_name,
                    mtype, None, None, msg.correlation_id, None, now, kept,
                ),
            )  # fmt: skip
        return msg

    async def _dead_letter(self, raw: bytes) -> None:
        try:
            await self.redis.lpush(self.dead_letter, raw)
        except RedisError as exc:
            _count_error(self.dead_letter or self.queue_name, "push", exc)
            _log.error("dead-letter push failed", queue_name=self.dead_letter, error=repr(exc))

    async def process(self, msg: Message, handler: Handler | None = None) -> bool:
        """Run the handler with the message's baggage attached. Returns True on success;
        a handler exception is logged and counted, never raised (the loop goes on)."""
        handler = handler or self.handler
        if handler is None:
            raise ValueError("QueueConsumer.process needs a handler")
        m = self._m
        source = msg.source or self.source or "unknown"
        ctx = msg._ctx
        token = attach(ctx if ctx is not None else msg.context())
        start = time.perf_counter()
        status = "success"
        try:
            if _POP in LEVELS.info or LEVELS.debug:  # wanted(), inlined: off by default
                emit(
                    _log,
                    _POP,
                    "queue pop",
                    queue_name=self.queue_name,
                    message_id=msg.id,
                    message_type=msg.type,
                    source=msg.source,
                    user_id=msg.user_id,
                    wait_ms=None if msg.wait_s is None else round(msg.wait_s * 1000, 3),
                )
            await handler(msg)
        except Exception as exc:
            status = "error"
            _log.error(
                "queue message handler failed",
                event_type="error",
                queue_name=self.queue_name,
                message_id=msg.id,
                error=repr(exc),
                exc_info=True,
            )
        finally:
            elapsed = time.perf_counter() - start
            detach(token)
        m.processing[status].record(elapsed)
        counter = m.processed_counters.get((source, status))
        (counter if counter is not None else m.processed(source, status)).add(1)
        return status == "success"

    async def run(self) -> None:
        """Consume until :meth:`stop` (or cancellation). Survives garbage, handler errors
        and Redis outages (reconnects with exponential backoff and jitter)."""
        sampler = (
            asyncio.create_task(
                sample_forever(self.redis, [self.queue_name], self.settings.sample_interval_s)
            )
            if self.sample
            else None
        )
        delay = self.settings.reconnect_initial_s
        try:
            while not self._stopping.is_set():
                try:
                    msg = await self.get()
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    if self.connected:
                        _log.warning(
                            "redis unavailable; consumer retrying",
                            queue_name=self.queue_name,
                            error=repr(exc),
                        )
                    _count_error(self.queue_name, "pop", exc)
                    self.connected = False
                    await self._sleep(jittered(delay))
                    delay = min(self.settings.reconnect_max_s, delay * 2)
                    continue
                except RedisError as exc:  # e.g. WRONGTYPE: the key is not a list
                    _count_error(self.queue_name, "pop", exc)
                    _log.error("queue pop failed", queue_name=self.queue_name, error=repr(exc))
                    await self._sleep(delay)
                    delay = min(self.settings.reconnect_max_s, delay * 2)
                    continue
                if not self.connected:
                    _log.info("redis reachable again; consumer resumed", queue_name=self.queue_name)
                    self.connected = True
                delay = self.settings.reconnect_initial_s
                if msg is not None and self.handler is not None:
                    await self.process(msg)
        finally:
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sampler

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
