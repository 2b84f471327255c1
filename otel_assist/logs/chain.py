"""The per-line processor chain as one structlog processor.

Every line, native or from a stdlib logger, goes through the same stages: contextvars
bound with ``structlog.contextvars``, secret masking, the standard fields (level,
timestamp, service, correlation_id, event_type, exception fields), callsite fields on
WARNING and above, the count of unknown event types, and the bridge to the OpenTelemetry
queue. They were six processors in structlog's loop; here the cheap stages are checks
inline and only masking, the standard fields and the bridge are calls. Why: structlog pays
a call and a loop step per processor on every log call, and the stages that usually do
nothing (no contextvars bound, an INFO line, a known event type) cost more to call than
to check (``bench/log_overhead.py``, ``bench/README.md``). The stages themselves are the
processors of :mod:`otel_assist.logs.processors`, :mod:`otel_assist.logs.callsite`,
:mod:`otel_assist.event_types` and :mod:`otel_assist.logs.export_queue`, unchanged, and
:func:`LineChain.stages` lists them in order for code that wants the separate processors.
"""

from __future__ import annotations

from typing import Any

import structlog.contextvars as structlog_contextvars

from otel_assist.event_types import VOCABULARY, UnknownEventTypes
from otel_assist.logs import callsite
from otel_assist.logs.export_queue import OtelBridge
from otel_assist.logs.processors import (
    EventDict,
    MaskSecrets,
    StandardFields,
    drop_meta,
    merge_bound_contextvars,
)

_LOUD = frozenset({"warning", "error", "critical"})


class LineChain:
    """contextvars -> masking -> standard fields -> callsite -> unknown event types ->
    (ProcessorFormatter's keys removed) -> bridge, in one processor."""

    def __init__(
        self,
        mask: MaskSecrets,
        fields: StandardFields,
        bridge: OtelBridge | None,
        callsite_all_lines: bool = False,
    ) -> None:
        self.mask = mask
        self.fields = fields
        self.bridge = bridge
        self.callsite_all_lines = callsite_all_lines
        self._callsite = callsite.all_levels()
        self._unknown = UnknownEventTypes()

    def stages(self) -> list[Any]:
        """The same chain as separate structlog processors (bridge excluded)."""
        return [
            merge_bound_contextvars,
            self.mask,
            self.fields,
            *callsite.processors(self.callsite_all_lines),
            self._unknown,
        ]

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        if structlog_contextvars._CONTEXT_VARS:
            event_dict = structlog_contextvars.merge_contextvars(logger, method_name, event_dict)
        event_dict = self.mask(logger, method_name, event_dict)
        event_dict = self.fields(logger, method_name, event_dict)
        if self.callsite_all_lines or event_dict["level"] in _LOUD:
            event_dict = self._callsite(logger, method_name, event_dict)
        event_type = event_dict.get("event_type")
        if type(event_type) is not str or event_type not in VOCABULARY:
            event_dict = self._unknown(logger, method_name, event_dict)
        if "_record" in event_dict:  # a stdlib record: the formatter's keys end here
            event_dict = drop_meta(logger, method_name, event_dict)
        if self.bridge is not None:
            event_dict = self.bridge(logger, method_name, event_dict)
        return event_dict
