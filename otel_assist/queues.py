"""Instrumented Redis list queues: producer LPUSH, consumer BRPOP (``redis.asyncio``;
``SyncQueueProducer`` pushes with a sync ``redis.Redis``).

The oldest message is therefore at index -1. Three lines instrument a service::

    producer = QueueProducer(redis, "to_secretary", source="telegram")
    await producer.push({"text": "hi"}, type="human", user_id=42)
    await QueueConsumer(redis, "to_secretary", handle).run()

What each side adds, and why it stays cheap:

* **push** wraps the payload in the envelope (:mod:`otel_assist.queue_envelope`) with the
  current baggage (the header string is cached per context object, contexts being
  immutable), LPUSHes it, counts ``queue_messages_total{direction=push}`` (per-message
  measurements are pre-aggregated in plain Python, :mod:`otel_assist.preaggregation`) and
  hands a history event to the shipper (a deque append). A Redis
  error propagates to the caller unchanged and is counted in ``queue_errors_total``.
* **consume** BRPOPs, classifies the element (envelope, legacy, invalid, too large),
  records the wait time (dequeue - enqueue), attaches the message's baggage so every log
  line of the handler carries the producer's correlation_id, times the handler and counts
  ``messages_processed_total{source,status}``. Garbage is counted in
  ``queue_invalid_messages_total`` and moved to a dead-letter list or handed on raw; the
  loop survives handler exceptions and reconnects with backoff when Redis goes away.
* **queue_length / queue_oldest_message_age** come from a sampler task (LLEN + LINDEX -1
  in one pipeline every ``OTEL_ASSIST_QUEUE_SAMPLE_INTERVAL_MS``), never from a Redis call
  per push.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import baggage, context

from otel_assist.extras import MissingExtraError

try:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ModuleNotFoundError as exc:  # one line naming the extra, not "No module named"
    raise MissingExtraError("otel_assist.queues", "queues", (exc.name or "redis",)) from None

from otel_assist import metrics
from otel_assist import queue_envelope as qe
from otel_assist.correlation import (
    BAGGAGE_KEY,
    baggage_header,
    context_from_baggage_header,
    context_with_correlation_id,
    get_correlation_id,
    is_valid,
    new_correlation_id,
)
from otel_assist.event_types import LogEventType, emit
from otel_assist.history import PAYLOAD_RAW_KEY, HistoryShipper, default_shipper
from otel_assist.logs import get_logger
from otel_assist.settings import _Reader

_log = get_logger("otel_assist.queues")
_UNSET: Any = object()


@dataclass(frozen=True)
class QueueSettings:
    """``OTEL_ASSIST_QUEUE_*`` variables."""

    max_message_bytes: int = 1024 * 1024
    sample_interval_s: float = 5.0
    block_timeout_s: float = 1.0
    reconnect_initial_s: float = 0.1
    reconnect_max_s: float = 10.0
    dead_letter_suffix: str = ""
    history: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> QueueSettings:
        r = _Reader(os.environ if env is None else env)
        return cls(
            max_message_bytes=r.integer("OTEL_ASSIST_QUEUE_MAX_MESSAGE_BYTES", 1024 * 1024, 0),
            sample_interval_s=r.integer("OTEL_ASSIST_QUEUE_SAMPLE_INTERVAL_MS", 5000, 50) / 1000,
            block_timeout_s=r.integer("OTEL_ASSIST_QUEUE_BLOCK_TIMEOUT_MS", 1000, 10) / 1000,
            reconnect_max_s=r.integer("OTEL_ASSIST_QUEUE_RECONNECT_MAX_MS", 10_000, 10) / 1000,
            dead_letter_suffix=r.text("OTEL_ASSIST_QUEUE_DEAD_LETTER_SUFFIX"),
            history=r.boolean("OTEL_ASSIST_QUEUE_HISTORY", True),
        )


class _Instruments:
    """One queue's instruments with attributes folded once (the catalog is built once per
    process, so these stay valid across configure())."""

    def __init__(self, queue_name: str) -> None:
        self.queue_name = queue_name
        self._processed: dict[tuple[str, str], dict[str, Any]] = {}
        cat = metrics.catalog()
        q = queue_name
        self.messages = cat["queue_messages"].raw
        self.push_attrs = cat["queue_messages"].attributes(queue_name=q, direction="push")
        self.pop_attrs = cat["queue_messages"].attributes(queue_name=q, direction="pop")
        self.wait = cat["queue_wait_duration"].raw
        self.queue_attrs = cat["queue_wait_duration"].attributes(queue_name=q)
        self.processing = cat["queue_processing_duration"]
        self.processing_attrs = {
            status: self.processing.attributes(queue_name=q, status=status)
            for status in ("success", "error")
        }
        self.processed = cat["messages_processed"]

    def processed_attrs(self, source: str, status: str) -> dict[str, Any]:
        """Folded attributes, cached per (source, status)."""
        key = (source, status)
        attrs = self._processed.get(key)
        if attrs is None:
            attrs = self.processed.attributes(source=source, status=status)
            if len(self._processed) < 10_000:
                self._processed[key] = attrs
        return attrs


def _count_error(queue_name: str, direction: str, exc: BaseException) -> None:
    with contextlib.suppress(Exception):
        metrics.catalog()["queue_errors"].add(
            1, queue_name=queue_name, direction=direction, error_type=type(exc).__name__
        )


def _shipper(value: HistoryShipper | None, settings: QueueSettings) -> HistoryShipper | None:
    if not settings.history:
        return None
    shipper = value if value is not None else default_shipper()
    return shipper if shipper.enabled else None


_PREFIX = BAGGAGE_KEY + "="
_EMPTY = context.Context()


def _header_for(ctx: context.Context, cid: str) -> str | None:
    """W3C baggage header of ``ctx``. Fast path for the usual case, baggage holding only a
    valid correlation_id (no escaping needed); anything else goes through the propagator."""
    entries = baggage.get_all(ctx)
    if len(entries) == 1 and entries.get(BAGGAGE_KEY) == cid and is_valid(cid):
        return _PREFIX + cid
    return baggage_header(ctx)


def _context_for(header: str | None) -> context.Context:
    """Inverse of :func:`_header_for`, with the same fast path; always holds an id."""
    if header and header.startswith(_PREFIX):
        value = header[len(_PREFIX) :]
        if is_valid(value):
            return baggage.set_baggage(BAGGAGE_KEY, value, _EMPTY)
    ctx = context_from_baggage_header(header)
    if get_correlation_id(ctx) is None:
        ctx = context_with_correlation_id(new_correlation_id(), ctx)
    return ctx


# --------------------------------------------------------------------------- producer


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
        self.shipper = _shipper(shipper, self.settings)
        self._m = _Instruments(queue_name)
        self._ctx: Any = _UNSET
        self._header: str | None = None
        self._cid = ""

    def _baggage(self) -> tuple[str | None, str]:
        """The current baggage header and correlation_id, cached per context object
        (contexts are immutable, so the same object always yields the same header)."""
        ctx = context.get_current()
        if ctx is self._ctx:
            return self._header, self._cid
        cid = get_correlation_id(ctx)
        if cid is None:
            # Every message carries an id so producer and consumer rows pair up; a context
            # without one gets a fresh id per message (not cached).
            cid = new_correlation_id()
            return _header_for(context_with_correlation_id(cid, ctx), cid), cid
        self._ctx, self._header, self._cid = ctx, _header_for(ctx, cid), cid
        return self._header, cid

    def _prepare(
        self, payload: Any, type: str, user_id: int | None, source: str | None
    ) -> tuple[qe.Envelope, bytes, str]:
        header, cid = self._baggage()
        env = qe.Envelope(
            id=qe.new_message_id(),
            enqueued_at=time.time(),
            payload=payload,
            type=type,
            source=source or self.source,
            user_id=user_id,
            baggage=header,
        )
        return env, env.encode(), cid

    def _pushed(self, env: qe.Envelope, data: bytes, cid: str) -> None:
        m = self._m
        m.messages.add(1, m.push_attrs)
        emit(
            _log,
            LogEventType.QUEUE_PUSH,
            "queue push",
            queue_name=self.queue_name,
            message_id=env.id,
            message_type=env.type,
            source=env.source,
            user_id=env.user_id,
            correlation_id=cid,
            size_bytes=len(data),
        )
        if self.shipper is not None:
            self.shipper.submit(
                "queue",
                {
                    "event_id": env.id + ":push",
                    "message_id": env.id,
                    "queue_name": self.queue_name,
                    "direction": "push",
                    "message_type": env.type,
                    "source": env.source,
                    "user_id": env.user_id,
                    "correlation_id": cid,
                    "enqueued_at": env.enqueued_at,
                    PAYLOAD_RAW_KEY: data,
                },
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
        env, data, cid = self._prepare(payload, type, user_id, source)
        try:
            await self.redis.lpush(self.queue_name, data)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                _count_error(self.queue_name, "push", exc)
            raise
        self._pushed(env, data, cid)
        return env.id


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
        env, data, cid = self._prepare(payload, type, user_id, source)
        try:
            self.redis.lpush(self.queue_name, data)
        except Exception as exc:
            _count_error(self.queue_name, "push", exc)
            raise
        self._pushed(env, data, cid)
        return env.id


# --------------------------------------------------------------------------- consumer


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

    @property
    def wait_s(self) -> float | None:
        if self.enqueued_at is None:
            return None
        return max(0.0, self.dequeued_at - self.enqueued_at)

    def context(self) -> context.Context:
        """The producer's baggage (a fresh correlation_id when the message had none);
        parsed once per message."""
        if self._ctx is None:
            self._ctx = _context_for(self.baggage)
        return self._ctx

    @property
    def correlation_id(self) -> str | None:
        return get_correlation_id(self.context())

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
        self.shipper = _shipper(shipper, self.settings)
        self.sample = sample
        self._m = _Instruments(queue_name)
        self._stopping = asyncio.Event()
        self.connected = True

    def stop(self) -> None:
        self._stopping.set()

    async def get(self, block_s: float | None = None) -> Message | None:
        """BRPOP one element (None on timeout or when it was dead-lettered)."""
        block = self.settings.block_timeout_s if block_s is None else block_s
        reply = await self.redis.brpop([self.queue_name], timeout=block)
        if reply is None:
            return None
        raw = reply[1]
        if isinstance(raw, str):
            raw = raw.encode()
        return await self._accept(raw)

    async def _accept(self, raw: bytes) -> Message | None:
        now = time.time()
        m = self._m
        m.messages.add(1, m.pop_attrs)
        decoded = qe.decode(raw, self.settings.max_message_bytes)
        env = decoded.envelope
        if env is not None:
            msg = Message(
                self.queue_name,
                env.payload,
                raw,
                now,
                env.id,
                env.type,
                env.source,
                env.user_id,
                env.enqueued_at,
                env.baggage,
            )
            m.wait.record(max(0.0, now - env.enqueued_at), m.queue_attrs)
        else:
            reason = decoded.reason or "invalid_json"
            metrics.catalog()["queue_invalid_messages"].add(
                1, queue_name=self.queue_name, reason=reason
            )
            data = decoded.data if reason in ("legacy", "invalid_envelope") else raw
            mtype = "legacy" if reason == "legacy" else "invalid"
            if isinstance(data, dict) and isinstance(data.get("type"), str):
                mtype = data["type"][:64] or mtype
            msg = Message(self.queue_name, data, raw, now, type=mtype, invalid_reason=reason)
        self._history_pop(msg)
        if msg.invalid_reason not in (None, "legacy"):
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

    async def _dead_letter(self, raw: bytes) -> None:
        try:
            await self.redis.lpush(self.dead_letter, raw)
        except RedisError as exc:
            _count_error(self.dead_letter or self.queue_name, "push", exc)
            _log.error("dead-letter push failed", queue_name=self.dead_letter, error=repr(exc))

    def _history_pop(self, msg: Message) -> None:
        if self.shipper is None:
            return
        event: dict[str, Any] = {
            "event_id": (msg.id + ":pop") if msg.id else qe.new_message_id() + ":pop",
            "message_id": msg.id,
            "queue_name": self.queue_name,
            "direction": "pop",
            "message_type": msg.type,
            "source": msg.source,
            "user_id": msg.user_id,
            "correlation_id": msg.correlation_id,
            "enqueued_at": msg.enqueued_at,
            "dequeued_at": msg.dequeued_at,
        }
        if msg.invalid_reason is not None:
            # An envelope's payload is stored once, on its push row; a message from an
            # uninstrumented producer has no push row, so its pop row keeps the payload.
            raw = msg.raw if msg.invalid_reason != "too_large" else msg.raw[:65536]
            event[PAYLOAD_RAW_KEY] = raw
        self.shipper.submit("queue", event)

    async def process(self, msg: Message, handler: Handler | None = None) -> bool:
        """Run the handler with the message's baggage attached. Returns True on success;
        a handler exception is logged and counted, never raised (the loop goes on)."""
        handler = handler or self.handler
        if handler is None:
            raise ValueError("QueueConsumer.process needs a handler")
        m = self._m
        source = msg.source or self.source or "unknown"
        token = context.attach(msg.context())
        start = time.perf_counter()
        status = "success"
        try:
            emit(
                _log,
                LogEventType.QUEUE_POP,
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
            context.detach(token)
        m.processing.raw.record(elapsed, m.processing_attrs[status])
        m.processed.raw.add(1, m.processed_attrs(source, status))
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
                    await self._sleep(delay / 2 + random.uniform(0, delay / 2))
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


# --------------------------------------------------------------------------- sampler


async def sample_once(redis: Any, queue_names: Iterable[str]) -> dict[str, tuple[int, float]]:
    """Set queue_length and queue_oldest_message_age for each queue (one pipeline)."""
    names = list(queue_names)
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.llen(name)
            pipe.lindex(name, -1)
        replies = await pipe.execute()
    now = time.time()
    cat = metrics.catalog()
    out: dict[str, tuple[int, float]] = {}
    for i, name in enumerate(names):
        length = int(replies[2 * i] or 0)
        enqueued = qe.enqueued_at_of(replies[2 * i + 1]) if length else None
        age = max(0.0, now - enqueued) if enqueued is not None else 0.0
        cat["queue_length"].set(length, queue_name=name)
        cat["queue_oldest_message_age"].set(age, queue_name=name)
        out[name] = (length, age)
    return out


async def sample_forever(redis: Any, queue_names: Iterable[str], interval_s: float) -> None:
    """The sampler task: errors (Redis down) skip a sample, never end the task."""
    names = list(queue_names)
    while True:
        with contextlib.suppress(RedisError, OSError):
            await sample_once(redis, names)
        await asyncio.sleep(interval_s)
