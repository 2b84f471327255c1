"""Where the queue envelope is defined: the JSON object every instrumented producer LPUSHes.

Format, version 1 (one JSON object, UTF-8, encoded with orjson)::

    {"v": 1, "id": "<32 hex>", "enqueued_at": 1764259200.123, "baggage": "correlation_id=...",
     "type": "human", "source": "telegram", "user_id": 42, "payload": <any JSON value>}

``enqueued_at`` is unix seconds (float) so the consumer can compute the wait time and
rest_service's live view the oldest message's age without parsing dates. ``baggage`` is a
W3C baggage header value: the same propagator that carries correlation_id over HTTP
carries it over Redis, so a consumer's log lines show the producer's correlation_id.

Anything else in a list is classified instead of trusted: valid JSON without ``v`` is a
*legacy* message (what producers sent before this envelope existed, accepted and counted),
undecodable bytes are *invalid_json*, an object with ``v`` but wrong field types is an
*invalid_envelope*, and a message above the configured size is *too_large* (never parsed).
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from otel_assist.history import wire

VERSION = 1
InvalidReason = Literal["legacy", "invalid_json", "invalid_envelope", "too_large"]

# The bounds a message's fields share with its history rows: one definition
# (otel_assist.history.wire), so whatever a valid envelope carries, rest_service stores.
_INT_ID = (wire.INT_ID_MIN, wire.INT_ID_MAX)
_MAX_ID = wire.ID_MAX
_MAX_TEXT = wire.SHORT_TEXT_MAX
_MAX_BAGGAGE = 8192


@dataclass(slots=True)
class Envelope:
    """One queue message as producers write it and consumers read it."""

    id: str
    enqueued_at: float
    payload: Any
    type: str = "message"
    source: str | None = None
    user_id: int | None = None
    baggage: str | None = None
    v: int = VERSION

    def encode(self) -> bytes:
        """The message bytes (see :func:`encode_message`)."""
        return encode_message(
            self.id,
            self.enqueued_at,
            self.payload,
            self.type,
            self.source,
            self.user_id,
            self.baggage,
            self.v,
        )


def encode_message(
    mid: str,
    enqueued_at: float,
    payload: Any,
    mtype: str,
    source: str | None,
    user_id: int | None,
    baggage: str | None,
    v: int = VERSION,
) -> bytes:
    """One envelope's bytes from its fields, in :class:`Envelope`'s order: what a producer
    pushes, without building an Envelope for every message. ValueError for a ``user_id``
    outside ±(2^53 - 1): refused at the producer, rather than becoming an
    invalid_envelope at the consumer; TypeError (orjson's) for a payload JSON cannot hold."""
    if user_id is not None and not (
        type(user_id) is int and _INT_ID[0] <= user_id <= _INT_ID[1]  # type(): bools refused
    ):
        raise ValueError(
            f"user_id must be an integer within ±(2^53 - 1) (the history wire range), "
            f"got {type(user_id).__name__}"
        )
    return orjson.dumps(
        {
            "v": v,
            "id": mid,
            "enqueued_at": enqueued_at,
            "baggage": baggage,
            "type": mtype,
            "source": source,
            "user_id": user_id,
            "payload": payload,
        }
    )


class _Ids:
    """Message ids: a random 64-bit prefix per process plus a counter (32 hex characters).

    ``os.urandom`` per id (what uuid4 does) is a system call, which costs tens of
    microseconds on a loaded host; the prefix is drawn once per process (again after a fork),
    so ids stay unique across processes and restarts with overwhelming probability."""

    def __init__(self) -> None:
        self.reseed()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count()

    def __call__(self) -> str:
        return self.prefix + format(next(self.counter), "016x")


new_message_id = _Ids()


def make(
    payload: Any,
    *,
    type: str = "message",
    source: str | None = None,
    user_id: int | None = None,
    baggage: str | None = None,
) -> Envelope:
    return Envelope(
        id=new_message_id(),
        enqueued_at=time.time(),
        payload=payload,
        type=type,
        source=source,
        user_id=user_id,
        baggage=baggage,
    )


@dataclass(slots=True)
class Decoded:
    """Result of :func:`decode`: an envelope, or why there is none.

    ``data`` is the parsed JSON for legacy messages (handed to the consumer as its payload)
    and None when the bytes could not be parsed.
    """

    envelope: Envelope | None
    reason: InvalidReason | None = None
    data: Any = None


#: A valid envelope's fields in :class:`Envelope`'s order (id, enqueued_at, payload, type,
#: source, user_id, baggage), as :func:`decode_fields` returns them.
Fields = tuple[str, float, Any, str, str | None, int | None, str | None]


def decode(raw: bytes | str, max_bytes: int = 0) -> Decoded:
    """Classify and parse one list element. Never raises."""
    fields = decode_fields(raw, max_bytes)
    return Decoded(Envelope(*fields)) if isinstance(fields, tuple) else fields


def decode_fields(raw: bytes | str, max_bytes: int = 0) -> Fields | Decoded:
    """:func:`decode` without the objects: a valid envelope's :data:`Fields`, else the
    :class:`Decoded` saying why there is none. Never raises. The consumer's per-message
    path: checks are inlined (``type(x) is int`` also rejects bools)."""
    if max_bytes and len(raw) > max_bytes:
        return Decoded(None, "too_large")
    try:
        data = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError, UnicodeDecodeError):
        return Decoded(None, "invalid_json")
    if type(data) is not dict or "v" not in data:
        return Decoded(None, "legacy", data)
    get = data.get
    version, mid, enqueued = data["v"], get("id"), get("enqueued_at")
    mtype, source, bag, user_id = get("type"), get("source"), get("baggage"), get("user_id")
    if (
        type(version) is int
        and version == VERSION
        and type(mid) is str
        and 0 < len(mid) <= _MAX_ID
        and (type(enqueued) is float or type(enqueued) is int)
        and enqueued > 0
        and (mtype is None or (type(mtype) is str and 0 < len(mtype) <= _MAX_TEXT))
        and (source is None or (type(source) is str and 0 < len(source) <= _MAX_TEXT))
        and (bag is None or (type(bag) is str and len(bag) <= _MAX_BAGGAGE))
        and (user_id is None or (type(user_id) is int and _INT_ID[0] <= user_id <= _INT_ID[1]))
    ):
        return (mid, float(enqueued), get("payload"), mtype or "message", source, user_id, bag)
    return Decoded(None, "invalid_envelope", data)


def enqueued_at_of(raw: bytes | str | None) -> float | None:
    """The enqueue time of an envelope (for the oldest-message age), else None."""
    if raw is None:
        return None
    decoded = decode(raw)
    return decoded.envelope.enqueued_at if decoded.envelope else None
