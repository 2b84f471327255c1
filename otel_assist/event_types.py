"""The log event-type vocabulary (the seed plan's ``LogEventType``) and the library's own
events.

Every log line carries ``event_type`` so Loki can be filtered by what happened; the values
are this enum, and the Grafana dashboards' ``event_type`` variable is generated from it
(``monitoring/grafana/generate.py``). A line with an ``event_type`` outside the vocabulary
is kept as it is and counted in ``log_unknown_event_types_total`` (so a typo shows up on a
dashboard instead of silently missing from a filter).

The library logs one structured line where it sees an event (queue producer/consumer,
``metrics.llm_call`` / ``tool_call`` / ``record_memory_operation``, the ASGI middleware,
the httpx hook). Which of them are logged at INFO - i.e. on with the default level - was
decided by their measured cost (docs/event-types.md has the table and the figures); the
rest are logged at DEBUG. ``OTEL_ASSIST_LOG_EVENTS`` names the ones logged at INFO:
``default``, ``all``, ``none`` or a comma-separated list of event types.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from enum import StrEnum
from typing import Any

from otel_assist.settings import _Reader


class LogEventType(StrEnum):
    """What a log line is about (the seed plan's list)."""

    REQUEST_IN = "request_in"
    REQUEST_OUT = "request_out"
    RESPONSE = "response"
    JOB_START = "job_start"
    JOB_END = "job_end"
    JOB_ERROR = "job_error"
    QUEUE_PUSH = "queue_push"
    QUEUE_POP = "queue_pop"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    LLM_CALL = "llm_call"
    LLM_RESPONSE = "llm_response"
    MEMORY_SAVE = "memory_save"
    MEMORY_RETRIEVE = "memory_retrieve"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"


VOCABULARY: frozenset[str] = frozenset(e.value for e in LogEventType)

#: The library's own per-event lines logged at INFO by default: the ones whose line costs
#: little next to the operation it reports (an LLM or tool call, a memory write, an
#: outgoing HTTP call). Per-request and per-message lines (request_in, response,
#: queue_push, queue_pop) cost more than the hello-world request or the Redis round trip
#: they describe, so they are DEBUG unless named in OTEL_ASSIST_LOG_EVENTS.
DEFAULT_INFO: frozenset[LogEventType] = frozenset(
    {
        LogEventType.LLM_CALL,
        LogEventType.LLM_RESPONSE,
        LogEventType.TOOL_CALL,
        LogEventType.TOOL_RESULT,
        LogEventType.MEMORY_SAVE,
        LogEventType.MEMORY_RETRIEVE,
        LogEventType.REQUEST_OUT,
    }
)
#: The library events this switch governs (job events have their own fixed levels).
LIBRARY_EVENTS: frozenset[LogEventType] = frozenset(
    {
        LogEventType.REQUEST_IN,
        LogEventType.RESPONSE,
        LogEventType.REQUEST_OUT,
        LogEventType.QUEUE_PUSH,
        LogEventType.QUEUE_POP,
        *DEFAULT_INFO,
    }
)


def info_events(env: Mapping[str, str] | None = None) -> frozenset[LogEventType]:
    """Parse ``OTEL_ASSIST_LOG_EVENTS`` (default/all/none or a list of event types)."""
    r = _Reader(os.environ if env is None else env)
    raw = r.text("OTEL_ASSIST_LOG_EVENTS").strip().lower()
    if raw in ("", "default"):
        return DEFAULT_INFO
    if raw == "all":
        return LIBRARY_EVENTS
    if raw == "none":
        return frozenset()
    names = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = sorted(names - {e.value for e in LIBRARY_EVENTS})
    if unknown:
        raise r.fail(
            "OTEL_ASSIST_LOG_EVENTS",
            f"not a library event type: {', '.join(unknown)} (one of "
            f"{', '.join(sorted(e.value for e in LIBRARY_EVENTS))}, or default/all/none)",
        )
    return frozenset(LogEventType(n) for n in names)


class EventLevels:
    """The level each library event is logged at; re-read by configure()."""

    def __init__(self) -> None:
        self.info: frozenset[LogEventType] = DEFAULT_INFO
        #: False unless the service logs at DEBUG: an event that is off then costs one
        #: set lookup instead of building a call that the logger would drop.
        self.debug = False

    def reload(self, log_level: str = "INFO", env: Mapping[str, str] | None = None) -> None:
        self.info = info_events(env)
        self.debug = log_level.upper() == "DEBUG"

    def method(self, logger: Any, event_type: LogEventType) -> Any:
        """The bound logger's ``info`` or ``debug`` for ``event_type`` (None: dropped)."""
        if event_type in self.info:
            return logger.info
        return logger.debug if self.debug else None


LEVELS = EventLevels()


class UnknownEventTypes:
    """Structlog processor: a line whose ``event_type`` is outside the vocabulary is kept
    and counted (``log_unknown_event_types_total``, no attributes: the values are
    free text)."""

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        value = event_dict.get("event_type")
        if isinstance(value, str) and value in VOCABULARY:
            return event_dict
        if value == "critical" and event_dict.get("level") == "critical":
            # The level's default event type: the vocabulary has no "critical".
            event_dict["event_type"] = LogEventType.ERROR.value
            return event_dict
        if value is not None:
            from otel_assist.metrics import instruments as metrics

            metrics.catalog()["log_unknown_event_types"].add(1)
        return event_dict


def wanted(event_type: LogEventType) -> bool:
    """True when :func:`emit` would log ``event_type``: per-message callers check it first
    so an event that is off (queue_push/queue_pop by default) costs no keyword dict."""
    return event_type in LEVELS.info or LEVELS.debug


def emit(logger: Any, event_type: LogEventType, event: str, **fields: Any) -> None:
    """Log one library event at its configured level (INFO or DEBUG). Never raises."""
    if event_type not in LEVELS.info and not LEVELS.debug:
        return
    try:  # noqa: SIM105 - a try costs nothing when nothing is raised
        LEVELS.method(logger, event_type)(event, event_type=event_type.value, **fields)
    except Exception:  # noqa: S110 - a log line never fails the operation it reports
        pass
