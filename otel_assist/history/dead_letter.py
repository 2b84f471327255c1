"""The dead-letter file: history events that cannot be delivered (a required field is bad,
or rest_service refuses the single event), set aside so they never take their batch down."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

import orjson

from otel_assist.history import wire


class DeadLetter:
    """Events that cannot be delivered, set aside instead of taking their batch down.

    One JSON object per line: ``{"time", "kind", "field", "reason", "event"}``, where
    ``event`` is the event with secret-looking keys masked and anything JSON cannot hold
    escaped. Appended under an exclusive ``flock`` (worker processes may share the file),
    capped at ``max_bytes`` (beyond it the event is only counted and logged). Fix the
    cause, then re-submit the lines' ``event`` objects to rest_service by hand."""

    def __init__(self, path: str, max_bytes: int, masker: Any) -> None:
        self.path = Path(path) if path else None
        self.max_bytes = max_bytes
        self.masker = masker

    def write(self, kind: str, field: str, reason: str, event: Any) -> bool:
        """True when the event is in the file. Never raises."""
        if self.path is None:
            return False
        try:
            line = self._line(kind, field, reason, event)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                if fh.seek(0, os.SEEK_END) + len(line) > self.max_bytes:
                    return False
                fh.write(line)
            return True
        except Exception:
            return False

    def _line(self, kind: str, field: str, reason: str, event: Any) -> bytes:
        if isinstance(event, bytes):
            try:
                event = orjson.loads(event)
            except orjson.JSONDecodeError:
                event = event.decode("utf-8", "backslashreplace")
        try:
            event = self.masker.mask(wire.json_safe(event))
        except Exception:
            event = f"<unreadable {type(event).__name__}>"
        record = {"time": time.time(), "kind": kind, "field": field, "reason": reason}
        record["event"] = event
        try:
            text = json.dumps(record, ensure_ascii=True, default=repr)
        except (ValueError, TypeError, RecursionError):
            record["event"] = "<not serialisable>"
            text = json.dumps(record, ensure_ascii=True, default=repr)
        return text.encode() + b"\n"
