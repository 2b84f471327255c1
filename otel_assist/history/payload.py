"""What a history event is made of, next to the shipper that sends it: the queue and job
event dicts (built by the queue ends and the job tracker, checked against
:mod:`otel_assist.history.wire` on the shipper thread), and the capture of a queue
message's payload (secrets masked, size capped).

Builders assemble a dict (no validation, no I/O); the raw message bytes ride under
``PAYLOAD_RAW_KEY`` and become the stored payload on the shipper thread. The queue ends do
not call them on their per-message path: they submit a *deferred event*, a flat tuple
``(builder, *positional arguments)`` (:data:`Deferred`), and the shipper thread calls the
builder. Filling a tuple costs the event loop a fraction of a ten-key dict built through a
keyword call, and a tuple is immutable, so what is stored is what was true at submit time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import orjson

#: Key under which a queue event carries the raw message bytes; the shipper turns them into
#: the stored payload with :class:`PayloadCapture` (off the caller's path).
PAYLOAD_RAW_KEY = "_payload_raw"

#: A history event not built yet: ``(builder, *args)``; the shipper thread calls
#: ``builder(*args)`` (a builder of this module, its arguments in their declared order).
Deferred: TypeAlias = tuple[Callable[..., dict[str, Any]] | Any, ...]


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def queue_push_event(
    message_id: str,
    queue_name: str,
    message_type: str,
    source: str | None,
    user_id: int | None,
    correlation_id: str,
    enqueued_at: float,
    raw: bytes,
) -> dict[str, Any]:
    """The history event of one LPUSH (its payload is stored on this row)."""
    return {
        "event_id": message_id + ":push",
        "message_id": message_id,
        "queue_name": queue_name,
        "direction": "push",
        "message_type": message_type,
        "source": source,
        "user_id": user_id,
        "correlation_id": correlation_id,
        "enqueued_at": enqueued_at,
        PAYLOAD_RAW_KEY: raw,
    }


def queue_pop_event(
    event_id: str,
    message_id: str | None,
    queue_name: str,
    message_type: str,
    source: str | None,
    user_id: int | None,
    correlation_id: str | None,
    enqueued_at: float | None,
    dequeued_at: float,
    raw: bytes | None = None,
) -> dict[str, Any]:
    """The history event of one BRPOP. ``raw`` only for a message without a push row (an
    uninstrumented producer's), whose payload is then kept here."""
    event: dict[str, Any] = {
        "event_id": event_id,
        "message_id": message_id,
        "queue_name": queue_name,
        "direction": "pop",
        "message_type": message_type,
        "source": source,
        "user_id": user_id,
        "correlation_id": correlation_id,
        "enqueued_at": enqueued_at,
        "dequeued_at": dequeued_at,
    }
    if raw is not None:
        event[PAYLOAD_RAW_KEY] = raw
    return event


def job_event(
    *,
    run_id: str,
    kind: str,
    job_id: str,
    job_name: str,
    job_type: str,
    at: float,
    correlation_id: str,
    job_kwargs: Mapping[str, Any],
    duration_s: float | None = None,
    error: str | None = None,
    traceback: str | None = None,
) -> dict[str, Any]:
    """One step of a job run (``kind`` is one of ``wire.JOB_KINDS``); ``user_id`` and
    ``reminder_id`` come from the job's kwargs when they are integers."""
    event: dict[str, Any] = {
        "event_id": f"{run_id}:{kind}",
        "run_id": run_id,
        "job_id": job_id[:256],
        "job_name": job_name[:256],
        "job_type": job_type[:128],
        "kind": kind,
        "at": at,
        "correlation_id": correlation_id,
        "user_id": _int_or_none(job_kwargs.get("user_id")),
        "reminder_id": _int_or_none(job_kwargs.get("reminder_id")),
    }
    if duration_s is not None:
        event["duration_ms"] = round(duration_s * 1000)
    if error is not None:
        event["error"] = error
        event["traceback"] = traceback
    return event


class PayloadCapture:
    """Turns a raw queue message into the payload stored in history: secret-looking keys
    masked (the log pipeline's word list), JSON above ``max_bytes`` replaced by a marked
    preview. Runs on the shipper thread, never on the caller's path."""

    def __init__(self, enabled: bool, max_bytes: int) -> None:
        from otel_assist.logs.processors import MaskSecrets
        from otel_assist.telemetry import current_settings

        self.enabled = enabled
        self.max_bytes = max_bytes
        settings = current_settings()
        self.masker = MaskSecrets(settings.secret_keys, settings.secret_patterns, max_depth=8)

    def __call__(self, raw: bytes | str) -> Any:
        if not self.enabled:
            return None
        try:
            data = orjson.loads(raw)
        except (orjson.JSONDecodeError, TypeError):
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            return self._truncate(text.replace("\x00", ""), len(raw))
        if isinstance(data, dict) and "v" in data and "payload" in data:
            data = data["payload"]
        masked = self.masker.mask(data)
        encoded = orjson.dumps(masked)
        if len(encoded) > self.max_bytes:
            return self._truncate(encoded.decode(), len(encoded))
        return masked

    def _truncate(self, text: str, size: int) -> Any:
        if len(text.encode()) <= self.max_bytes:
            return text
        preview = text.encode()[: self.max_bytes].decode("utf-8", "ignore")
        return {"_truncated": True, "size_bytes": size, "preview": preview}
