"""Callsite fields (``filename``, ``lineno``, ``func_name``) on WARNING and above.

A reader of a warning or an error needs to know where it came from; on the INFO lines of
a busy service the frame walk costs more than the rest of the line's processing, so by
default only WARNING+ lines get the fields (``OTEL_ASSIST_LOG_CALLSITE=true`` puts them on
every line; the figures are in docs/event-types.md). The bridge turns them into
``code.filepath`` / ``code.lineno`` / ``code.function`` on the OTel record.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import structlog

FIELDS = {
    structlog.processors.CallsiteParameter.FILENAME,
    structlog.processors.CallsiteParameter.LINENO,
    structlog.processors.CallsiteParameter.FUNC_NAME,
}
_LOUD = frozenset({"warning", "error", "critical"})


def all_levels() -> structlog.processors.CallsiteParameterAdder:
    """The adder for every line (frames inside otel_assist are skipped)."""
    return structlog.processors.CallsiteParameterAdder(FIELDS, additional_ignores=["otel_assist"])


class WarningAndAbove:
    """The same fields, only on lines at WARNING or above (runs after the level is
    normalised, so ``level`` is one of debug/info/warning/error/critical)."""

    def __init__(self) -> None:
        self._adder = all_levels()

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        if event_dict.get("level") in _LOUD:
            return self._adder(logger, method_name, event_dict)
        return event_dict


def processors(all_lines: bool) -> list[Any]:
    """The callsite processor for ``OTEL_ASSIST_LOG_CALLSITE`` (true: every line)."""
    return [all_levels()] if all_lines else [WarningAndAbove()]
