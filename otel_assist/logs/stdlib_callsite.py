"""Stdlib loggers without the stack walk on lines that never show where they came from.

``logging.Logger._log`` walks the stack (``findCaller``) for every record, to fill
``pathname``/``lineno``/``funcName``. With this package's handler the JSON line and the
OpenTelemetry record show the callsite only on WARNING and above (see
:mod:`otel_assist.logs.callsite`), so on the INFO lines a service writes per request
(uvicorn's access line, an application's ``logging.info``) the walk is thrown away: it
was the largest single cost of a stdlib line after the record itself
(``bench/http_logging.py``). :class:`LeanLogger` skips it below WARNING; WARNING and
above, lines with ``stack_info``, and every line when ``OTEL_ASSIST_LOG_CALLSITE=true``
walk the stack as before. Records of skipped lines carry logging's own "unknown"
values (``(unknown file)``, 0, ``(unknown function)``), which is what stdlib logging
gives when it cannot find the caller.

Only plain ``logging.Logger`` objects are switched (a library's own Logger subclass and
the root logger are left alone), and :func:`restore` switches them back.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any


class LeanLogger(logging.Logger):
    """A ``logging.Logger`` whose records below WARNING skip the caller lookup."""

    walk_all_levels = False  # OTEL_ASSIST_LOG_CALLSITE=true: every line has a callsite

    def _log(
        self,
        level: int,
        msg: object,
        args: Any,
        exc_info: Any = None,
        extra: Mapping[str, object] | None = None,
        stack_info: bool = False,
        stacklevel: int = 1,
    ) -> None:
        if level >= logging.WARNING or stack_info or LeanLogger.walk_all_levels:
            # One frame more to skip: this method's, which is not logging's own.
            super()._log(level, msg, args, exc_info, extra, stack_info, stacklevel + 1)
            return
        if exc_info:
            if isinstance(exc_info, BaseException):
                exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
            elif not isinstance(exc_info, tuple):
                exc_info = sys.exc_info()
        record = self.makeRecord(
            self.name,
            level,
            "(unknown file)",
            0,
            msg,
            args,
            exc_info,
            "(unknown function)",
            extra,
            None,
        )
        self.handle(record)


def install(walk_all_levels: bool) -> None:
    """Make plain stdlib loggers, existing and future, :class:`LeanLogger`."""
    LeanLogger.walk_all_levels = walk_all_levels
    if logging.getLoggerClass() is logging.Logger:
        logging.setLoggerClass(LeanLogger)
    for logger in _loggers():
        if type(logger) is logging.Logger:
            logger.__class__ = LeanLogger


def restore() -> None:
    """Plain ``logging.Logger`` again, for every logger :func:`install` switched."""
    if logging.getLoggerClass() is LeanLogger:
        logging.setLoggerClass(logging.Logger)
    for logger in _loggers():
        if type(logger) is LeanLogger:
            logger.__class__ = logging.Logger  # type: ignore[assignment]


def _loggers() -> list[logging.Logger]:
    manager = logging.Logger.manager
    return [lg for lg in list(manager.loggerDict.values()) if isinstance(lg, logging.Logger)]
