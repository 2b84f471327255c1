"""structlog processors that give every log line the same shape.

Each is a plain callable ``(logger, method_name, event_dict) -> event_dict``, in the manner
of structlog's own processors. They run for native structlog calls and, through
``structlog.stdlib.ProcessorFormatter``'s foreign pre-chain, for stdlib loggers of libraries
(uvicorn, sqlalchemy, httpx, apscheduler), so both kinds of line look alike.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Iterable, MutableMapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import structlog.contextvars as structlog_contextvars

from otel_assist.correlation import CurrentCorrelationId

EventDict = MutableMapping[str, Any]
TIMESTAMP_NS_KEY = "_ts_ns"
MASK = "***"

_LEVEL_ALIASES = {"warn": "warning", "exception": "error", "fatal": "critical"}


class _IsoClock:
    """ISO-8601 UTC timestamps; the date-and-seconds prefix is reused within a second, so
    formatting costs one f-string instead of a datetime per call."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, ns: int) -> str:
        second, rest = divmod(ns, 1_000_000_000)
        if second != self._second:
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._prefix}.{rest // 1000:06d}Z"


_CLOCK = _IsoClock()


def exception_fields(_logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Turn ``exc_info`` into the semantic-convention fields exception.type/message/stacktrace.

    Doing it once here means the JSON line and the OpenTelemetry record agree.
    """
    exc_info = event_dict.pop("exc_info", None)
    if not exc_info and method_name == "exception":
        exc_info = True
    if not exc_info:
        return event_dict
    exc = _resolve_exc_info(exc_info)
    if exc is None:
        return event_dict
    etype, value, tb = exc
    event_dict["exception.type"] = etype.__qualname__ if etype else "Exception"
    event_dict["exception.message"] = str(value)
    event_dict["exception.stacktrace"] = "".join(traceback.format_exception(etype, value, tb))
    return event_dict


ExcTuple = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


def _resolve_exc_info(exc_info: Any) -> ExcTuple | None:
    if isinstance(exc_info, BaseException):
        return type(exc_info), exc_info, exc_info.__traceback__
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info
    current = sys.exc_info()
    return current if current[0] is not None else None


_CONTAINER_TYPES = frozenset({dict, list, tuple})


class MaskSecrets:
    """Replace values under secret-looking keys with ``***``, in nested dicts too.

    A key is secret when it contains one of the configured words (token, password, ...).
    Key names repeat, so the verdict is remembered: the common case (every key already
    known to be safe, no nested containers) is one set difference done in C and one pass
    over the values' types.
    """

    def __init__(self, words: Iterable[str], max_depth: int = 4) -> None:
        self.max_depth = max_depth
        self.reset(words)

    def reset(self, words: Iterable[str]) -> None:
        self.words = tuple(w.lower() for w in words)
        self._safe: set[str] = set()
        self._secret: set[str] = set()

    def is_secret(self, key: str) -> bool:
        if key in self._safe:
            return False
        if key in self._secret:
            return True
        secret = any(w in key.lower() for w in self.words)
        if len(self._safe) + len(self._secret) < 10_000:
            (self._secret if secret else self._safe).add(key)
        return secret

    def mask(self, value: Any, depth: int = 0) -> Any:
        if depth >= self.max_depth:
            return value
        if isinstance(value, dict):
            return {
                k: (MASK if isinstance(k, str) and self.is_secret(k) else self.mask(v, depth + 1))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.mask(v, depth + 1) for v in value]
        return value

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        unknown = event_dict.keys() - self._safe
        for key in unknown:
            if isinstance(key, str) and self.is_secret(key) and event_dict[key] is not None:
                event_dict[key] = MASK
        if _CONTAINER_TYPES.isdisjoint(map(type, event_dict.values())):
            return event_dict
        for key, value in event_dict.items():
            if type(value) in _CONTAINER_TYPES:
                event_dict[key] = self.mask(value)
        return event_dict


def merge_bound_contextvars(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog's ``merge_contextvars``, skipped while nothing was ever bound with
    ``structlog.contextvars.bind_contextvars`` (it copies the whole context per call)."""
    if not structlog_contextvars._CONTEXT_VARS:
        return event_dict
    return structlog_contextvars.merge_contextvars(logger, method_name, event_dict)


class StandardFields:
    """All the per-line fields in one processor: level, timestamp, service, correlation_id,
    event_type, and exception fields when there is an exception.

    One processor instead of one per field: the structlog loop's per-processor overhead
    is paid on every log call (``bench/log_overhead.py``). ``event_type`` defaults to the
    level: the seed plan's LogEventType has info/warning/error/debug for exactly that.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self._correlation_id = CurrentCorrelationId()

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        level = event_dict.get("level") or method_name
        if level not in _PLAIN_LEVELS:
            level = str(level).lower()
            level = _LEVEL_ALIASES.get(level, level)
        event_dict["level"] = level
        ns = time.time_ns()
        event_dict[TIMESTAMP_NS_KEY] = ns
        event_dict["timestamp"] = _CLOCK.format(ns)
        event_dict["service"] = self.service
        if "correlation_id" not in event_dict:
            cid = self._correlation_id()
            if cid is not None:
                event_dict["correlation_id"] = cid
        if "event_type" not in event_dict:
            event_dict["event_type"] = level
        if "exc_info" in event_dict or method_name == "exception":
            exception_fields(logger, method_name, event_dict)
        return event_dict


_PLAIN_LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})


def drop_meta(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """Remove ProcessorFormatter's private keys before the record leaves the pipeline."""
    event_dict.pop("_record", None)
    event_dict.pop("_from_structlog", None)
    return event_dict
