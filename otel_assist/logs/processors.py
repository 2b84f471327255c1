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
from otel_assist.redaction import MASK, Redactor, escape_surrogates, safe_str

EventDict = MutableMapping[str, Any]
TIMESTAMP_NS_KEY = "_ts_ns"

_LEVEL_ALIASES = {"warn": "warning", "exception": "error", "fatal": "critical"}


class _IsoClock:
    """ISO-8601 UTC timestamps; the date-and-seconds prefix is reused within a second, so
    formatting costs one f-string instead of a datetime per call. The microseconds are two
    look-ups of three digits: a ``:06d`` format spec cost half the formatting (about
    0.2 us a line, ``bench/log_overhead.py``)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, ns: int) -> str:
        second, rest = divmod(ns, 1_000_000_000)
        if second != self._second:
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            self._second = second
        milli, micro = divmod(rest // 1000, 1000)
        return f"{self._prefix}{_THREE_DIGITS[milli]}{_THREE_DIGITS[micro]}Z"


_THREE_DIGITS = tuple(f"{i:03d}" for i in range(1000))


_CLOCK = _IsoClock()


def exception_fields(
    _logger: Any, method_name: str, event_dict: EventDict, redactor: Redactor | None = None
) -> EventDict:
    """Turn ``exc_info`` into the semantic-convention fields exception.type/message/stacktrace.

    Doing it once here means the JSON line and the OpenTelemetry record agree. Exception
    texts are scrubbed (a driver's error may quote its DSN, a client's its headers), and an
    exception whose ``__str__`` fails still gives a line.
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
    scrub = redactor.scrub if redactor is not None else escape_surrogates
    event_dict["exception.type"] = etype.__qualname__ if etype else "Exception"
    event_dict["exception.message"] = scrub(safe_str(value))
    try:
        stacktrace = "".join(traceback.format_exception(etype, value, tb))
    except Exception:  # a broken exception object: keep what can be said
        stacktrace = f"{event_dict['exception.type']}: {event_dict['exception.message']}"
    event_dict["exception.stacktrace"] = scrub(stacktrace)
    return event_dict


ExcTuple = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


def _resolve_exc_info(exc_info: Any) -> ExcTuple | None:
    if isinstance(exc_info, BaseException):
        return type(exc_info), exc_info, exc_info.__traceback__
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info
    current = sys.exc_info()
    return current if current[0] is not None else None


_PLAIN_NUMBERS = frozenset({int, float, bool, type(None)})
# ProcessorFormatter's own keys: the LogRecord must reach the formatter untouched.
_FORMATTER_KEYS = frozenset({"_record", "_from_structlog"})


class MaskSecrets:
    """Secrets out of the event dict, by key and by shape (:mod:`otel_assist.redaction`):
    values under secret keys become ``***`` at any depth, every string is scrubbed of
    secret shapes (DSN passwords, bearer tokens, ``password=`` pairs, operator patterns),
    and anything that is not a string or a number becomes a plain structure (Mappings of
    any type, dataclasses, sets) or its scrubbed text, so the JSON line and the OTel
    record are built from the same, already clean, values.

    The common call is cheap: key verdicts and clean short strings are remembered, so a
    call whose keys and strings were all seen before costs a subset test done in C and
    one pass of hash lookups over the values.
    """

    def __init__(
        self, words: Iterable[str], patterns: Iterable[str] = (), max_depth: int = 32
    ) -> None:
        self.redactor = Redactor(words, patterns, max_depth=max_depth)
        # Keys known to need no masking; the formatter's own keys are never masked.
        self._safe: set[str] = set(_FORMATTER_KEYS)

    def mask(self, value: Any) -> Any:
        """A clean copy of one value (see :meth:`Redactor.redact`); kept for callers of
        the earlier API (the history payload capture)."""
        return self.redactor.redact(value)

    def reset(self, words: Iterable[str], patterns: Iterable[str] = ()) -> None:
        self.redactor.reset(words, patterns)
        self._safe = set(_FORMATTER_KEYS)

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        redactor = self.redactor
        # A subset test allocates nothing; the difference is built only for new keys.
        if not self._safe.issuperset(event_dict):
            self._mask_keys(event_dict, event_dict.keys() - self._safe)
        clean = redactor._clean_text
        for key, value in event_dict.items():
            kind = type(value)
            if kind is str:
                if value not in clean:
                    event_dict[key] = redactor.scrub(value)
            elif kind not in _PLAIN_NUMBERS and key not in _FORMATTER_KEYS:
                event_dict[key] = redactor.redact(value)
        return event_dict

    def _mask_keys(self, event_dict: EventDict, unknown: set[Any]) -> None:
        redactor = self.redactor
        for key in unknown:
            if type(key) is not str:
                value = event_dict.pop(key)
                event_dict[redactor.scrub(safe_str(key))] = value
            elif key in _FORMATTER_KEYS:
                continue
            elif redactor.is_secret_key(key):
                if event_dict[key] is not None:
                    event_dict[key] = MASK
            elif len(self._safe) < 10_000:
                self._safe.add(key)


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

    def __init__(self, service: str, redactor: Redactor | None = None) -> None:
        self.service = service
        self.redactor = redactor
        self._correlation_id = CurrentCorrelationId()

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        level = event_dict.get("level") or method_name
        if level not in _PLAIN_LEVELS:
            level = safe_str(level).lower()
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
            exception_fields(logger, method_name, event_dict, self.redactor)
        return event_dict


_PLAIN_LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})


def drop_meta(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """Remove ProcessorFormatter's private keys before the record leaves the pipeline."""
    event_dict.pop("_record", None)
    event_dict.pop("_from_structlog", None)
    return event_dict
