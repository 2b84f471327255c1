"""Logging set-up: structlog for service code, stdlib loggers of libraries routed through
the same processors, JSON lines (orjson) in production and a readable console in
development, every record also bridged to OpenTelemetry.

Native structlog calls never touch the stdlib ``logging`` machinery (that is where most of
a stdlib log call's cost goes); library records reach the same processor chain through
``structlog.stdlib.ProcessorFormatter``. Either way, one call gives one line and one record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TextIO, cast

import orjson
import structlog
from structlog.typing import Processor

from otel_assist.logs import processors as lp
from otel_assist.logs import stdlib_callsite
from otel_assist.logs.chain import LineChain
from otel_assist.logs.export_queue import LevelCounts, LogQueue, OtelBridge
from otel_assist.redaction import safe_str
from otel_assist.settings import Settings

# Loggers that libraries configure with their own handlers (uvicorn does, with
# propagate=False): they are reset to propagate into the root handler installed here.
LIBRARY_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "sqlalchemy",
    "sqlalchemy.engine",
    "sqlalchemy.orm",
    "sqlalchemy.pool",
    "httpx",
    "httpcore",
    "apscheduler",
    "alembic",
    "asyncio",
)
# Chatty below WARNING and not worth a line per event in production: httpx logs every
# request at INFO, sqlalchemy every statement, mapper set-up and pool checkout.
_QUIET = {
    "httpcore": logging.WARNING,
    "httpx": logging.WARNING,
    "sqlalchemy.engine": logging.WARNING,
    "sqlalchemy.orm": logging.WARNING,
    "sqlalchemy.pool": logging.WARNING,
}
_HANDLER_NAME = "otel-assist"


class _Sink:
    """Where JSON bytes go. Loggers cached by structlog keep a reference to their sink, so
    configure() re-points this one object instead of building a new one."""

    def __init__(self) -> None:
        self.target: Any = sys.stdout.buffer

    def write(self, data: bytes) -> None:
        try:
            self.target.write(data)
        except (ValueError, OSError):
            # stdout closed (interpreter shutdown, a test harness) or broken pipe: a log
            # call must not raise into the service because its output is gone.
            return

    def flush(self) -> None:
        try:
            self.target.flush()
        except (ValueError, OSError):
            return

    def line(self, data: bytes) -> None:
        """One JSON line, written and flushed under one guard (what ``write`` then
        ``flush`` do, in one call: see :class:`_LineLogger`)."""
        try:
            target = self.target
            target.write(data + b"\n")
            target.flush()
        except (ValueError, OSError):
            return


class _LineLogger(structlog.BytesLogger):
    """structlog's ``BytesLogger`` on the sink, with one call into it per line instead of
    two (``write`` then ``flush``, each a Python method with its own guard): a tenth of
    a microsecond of every native line (``bench/log_overhead.py``). Same per-file lock,
    same bytes."""

    def msg(self, message: bytes) -> None:
        with self._lock:
            _SINK.line(message)  # the file it was made with (_LineLoggerFactory)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _LineLoggerFactory:
    """``structlog.BytesLoggerFactory`` for :class:`_LineLogger` on the process-wide sink."""

    def __init__(self, sink: _Sink) -> None:
        self.sink = sink

    def __call__(self, *args: Any) -> _LineLogger:
        logger = _LineLogger(cast(BinaryIO, self.sink))
        # The name structlog 26's factory gives its loggers; 25.x's BytesLogger takes no
        # ``name`` argument (the lowest structlog allowed, tests/test_dependency_ranges.py).
        logger.name = args[0] if args else None
        return logger


class _SafeText:
    """The console renderer's stream: a closed or broken stdout drops the line instead of
    raising into the log call (the JSON path's ``_Sink`` does the same for bytes)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        try:
            self.stream.write(text)
        except (ValueError, OSError):
            return

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (ValueError, OSError):
            return


class _QuietStreamHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """A StreamHandler that drops the line instead of printing 'Logging error' tracebacks
    when its stream is already closed (at exit, under test harnesses)."""

    def handleError(self, record: logging.LogRecord) -> None:
        stream = getattr(self, "stream", None)
        if stream is None or getattr(stream, "closed", False):
            return
        super().handleError(record)


class _SinkHandler(_QuietStreamHandler):
    """The root handler in JSON mode: each formatted line goes to the JSON sink as bytes,
    next to structlog's lines, instead of through the text stream's encoder and its
    flush (about half of the handler's own cost per stdlib line, two lines per request
    in ``bench/http_logging.py``). The sink drops a line whose stdout is closed."""

    def __init__(self, stream: TextIO, sink: _Sink) -> None:
        super().__init__(stream)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record).encode("utf-8", "backslashreplace")
            self.sink.write(line + b"\n")
            self.sink.flush()
        except RecursionError:  # as logging.StreamHandler does
            raise
        except Exception:
            self.handleError(record)


class _SafeProcessorFormatter(structlog.stdlib.ProcessorFormatter):
    line_chain: Any  # set by configure_logging: LineChain with the bridge

    """ProcessorFormatter that never makes the logging module print '--- Logging error ---'
    and lose the line: a record whose message cannot be built (``%d`` given a string, an
    argument whose ``__str__`` raises) is logged with its template and its arguments'
    text instead. Nothing after the bridge can fail, so the retry cannot give two
    OpenTelemetry records for one call."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            if getattr(record, "_logger", None) is None:
                return self._format_foreign(record)
            return super().format(record)  # a structlog record sent through stdlib
        except Exception as exc:
            fallback = logging.makeLogRecord(record.__dict__)
            fallback.msg = (
                f"{safe_str(record.msg)} {safe_str(record.args)}"
                f" (log message could not be formatted: {type(exc).__name__})"
            )
            fallback.args = ()
            try:
                return super().format(fallback)
            except Exception as last:
                return _emergency_line({"event": fallback.msg}, last).decode()

    def _format_foreign(self, record: logging.LogRecord) -> str:
        """What ``ProcessorFormatter.format`` returns for a stdlib record, as this module
        configures it (message-only format, no foreign args, exception and stack info
        turned into fields), without its two per-line copies: ``makeLogRecord`` of the
        whole record and ``Formatter.format`` on it. That was a tenth of the request's CPU
        in ``bench/http_logging.py`` (uvicorn's access line and an application line go
        through here on every request). The record is only read, so other handlers still
        see it as logged."""
        method = record.levelname.lower()
        ed: Any = {"event": record.getMessage(), "_record": record, "_from_structlog": False}
        if record.exc_info:
            ed["exc_info"] = record.exc_info
        if record.stack_info:
            ed["stack_info"] = record.stack_info
        ed["logger"] = record.name  # structlog.stdlib.add_logger_name
        logger = self.logger
        # The whole chain, bridge included, in one call (LineChain), then the renderer:
        # what foreign_pre_chain + processors do, without their per-processor steps.
        ed = self.line_chain(logger, method, ed)
        return cast(str, self.processors[-1](logger, method, ed))


# Stateful pieces of the chain are process-wide singletons updated in place by
# configure_logging(), for the same reason: structlog caches each logger's processor list on
# first use, and a reconfigure (a test, a forked worker) must reach those loggers too.
_SINK = _Sink()
_MASK = lp.MaskSecrets(())
_FIELDS = lp.StandardFields("unknown_service", _MASK.redactor)
BRIDGE = OtelBridge(None, None)


def shared_processors(settings: Settings) -> list[Processor]:
    """The chain both native and stdlib records go through, before bridge and renderer.

    Masking comes before the standard fields: the fields this library adds (timestamp,
    level, service, correlation_id from its checked charset) need no scrubbing, and the
    exception fields are scrubbed where they are made."""
    return LineChain(_MASK, _FIELDS, None, settings.log_callsite).stages()


def _json_bytes(_logger: Any, _method: str, event_dict: lp.EventDict) -> bytes:
    """The JSON line. Never raises: a log call must not fail the caller, nor lose the line.

    orjson refuses some values even with ``default=``: integers beyond 64 bits, keys that
    are not strings, lone surrogates, nesting past its depth limit. Those rare lines are
    rebuilt through the redactor's walk, which makes every value serialisable the same
    way the OpenTelemetry side sees it (big integers as text, ``\\udcff`` escaped)."""
    try:
        return orjson.dumps(event_dict, default=safe_str)
    except Exception:
        return _json_bytes_rebuilt(event_dict)


def _json_bytes_rebuilt(event_dict: lp.EventDict) -> bytes:
    try:
        clean = _MASK.redactor.redact(dict(event_dict), json_numbers=True)
        try:
            return orjson.dumps(clean)
        except TypeError:  # integers beyond 64 bits: the stdlib encoder writes them
            return json.dumps(clean, ensure_ascii=False, allow_nan=False).encode()
    except Exception as exc:  # the last resort: a line that says what happened
        return _emergency_line(event_dict, exc)


def _emergency_line(event_dict: lp.EventDict, exc: BaseException) -> bytes:
    try:
        event = _MASK.redactor.scrub(safe_str(event_dict.get("event")))
    except Exception:
        event = "<unprintable event>"
    line = {
        "event": event,
        "level": safe_str(event_dict.get("level", "error")),
        "log_error": f"line could not be serialised: {type(exc).__name__}",
    }
    return json.dumps(line).encode()


def _json_text(logger: Any, method: str, event_dict: lp.EventDict) -> str:
    return _json_bytes(logger, method, event_dict).decode()


def use_console(settings: Settings, stream: TextIO) -> bool:
    if settings.log_format == "auto":
        return bool(getattr(stream, "isatty", lambda: False)())
    return settings.log_format == "console"


def configure_logging(
    settings: Settings,
    queue: LogQueue | None,
    counts: LevelCounts | None,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib root logger. Safe to call again (it re-points
    the sink, service name, masking and bridge of loggers already in use)."""
    stream = stream or sys.stdout
    console = use_console(settings, stream)
    level = logging.getLevelName(settings.log_level)
    _FIELDS.service = settings.service_name
    _MASK.reset(settings.secret_keys, settings.secret_patterns)
    BRIDGE.queue, BRIDGE.counts = queue, counts
    if queue is not None:
        queue.redactor = _MASK.redactor
    _SINK.target = _binary(stream)
    chain = LineChain(_MASK, _FIELDS, BRIDGE, settings.log_callsite)

    renderer: Callable[..., Any]
    if console:
        console_renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
        structlog.configure(
            processors=[chain, console_renderer],
            logger_factory=structlog.PrintLoggerFactory(cast(TextIO, _SafeText(stream))),
            wrapper_class=structlog.make_filtering_bound_logger(level),
            cache_logger_on_first_use=True,
        )
        renderer = console_renderer
    else:
        structlog.configure(
            processors=[chain, _json_bytes],
            logger_factory=_LineLoggerFactory(_SINK),
            wrapper_class=structlog.make_filtering_bound_logger(level),
            cache_logger_on_first_use=True,
        )
        renderer = _json_text

    # foreign_pre_chain + processors are what ProcessorFormatter itself runs (a structlog
    # record sent through stdlib, and the fallback of a record that failed to format);
    # stdlib records take line_chain + the renderer (_format_foreign).
    formatter = _SafeProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name,
            LineChain(_MASK, _FIELDS, None, settings.log_callsite),
        ],
        processors=[lp.drop_meta, BRIDGE, renderer],
    )
    formatter.line_chain = chain
    _install_root_handler(formatter, stream, level, json_sink=not console)
    stdlib_callsite.install(settings.log_callsite)
    _keep_uvicorn_routed()
    _flush_before_uvicorn_exits()


def _binary(stream: TextIO) -> Any:
    """The byte stream under a text stream (stdout), so JSON bytes skip re-encoding."""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        stream.flush()
        return buffer
    return _TextAdapter(stream)


class _TextAdapter:
    """Lets BytesLogger write to a text-only stream (pytest's capture, StringIO)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, data: bytes) -> None:
        self.stream.write(data.decode())

    def flush(self) -> None:
        self.stream.flush()


def _install_root_handler(
    formatter: logging.Formatter, stream: TextIO, level: int, json_sink: bool = False
) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = _SinkHandler(stream, _SINK) if json_sink else _QuietStreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    # Other root handlers would print the same record a second time in another shape.
    for other in list(root.handlers):
        root.removeHandler(other)
    root.addHandler(handler)
    root.setLevel(level)
    _reset_library_loggers()
    # The OpenTelemetry exporters log a warning per failed batch; the failures are
    # counted in otel_assist_log_records_dropped_total, so keep only real errors. (The
    # log exporter says nothing at all: log_export.ExportHealth reports for it.)
    logging.getLogger("opentelemetry").setLevel(logging.ERROR)


def _reset_library_loggers(names: tuple[str, ...] = LIBRARY_LOGGERS) -> None:
    """Route library loggers into the root handler, keeping what their owner decided:
    a level already set stays (only raised to our quiet level), and a logger switched off
    (no handler, propagate off: how uvicorn implements ``--no-access-log``) stays off."""
    for name in names:
        lib = logging.getLogger(name)
        if not lib.handlers and not lib.propagate:
            continue
        lib.handlers.clear()
        lib.propagate = True
        quiet = _QUIET.get(name)
        if quiet is not None and lib.level < quiet:
            lib.setLevel(quiet)


_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _keep_uvicorn_routed() -> None:
    """uvicorn applies its own logging dictConfig when it starts, which may be *after*
    configure() (``opentelemetry-instrument uvicorn ...``, or ``uvicorn.run()`` after
    configure()). Right after it does, its loggers are re-routed into the root handler,
    keeping what its options meant: the ``--log-level`` it set, and a logger it switched
    off (``--no-access-log`` leaves uvicorn.access with no handler and propagate off)
    stays off."""
    try:
        from uvicorn.config import Config
    except ImportError:
        return
    original = Config.configure_logging
    if getattr(original, "_otel_assist", False):
        return

    def configure_logging(self: Any) -> None:
        ours_access_level = logging.getLogger("uvicorn.access").level
        original(self)
        _reset_library_loggers(_UVICORN_LOGGERS)
        access = logging.getLogger("uvicorn.access")
        if ours_access_level > access.level:
            access.setLevel(ours_access_level)  # our access line replaces uvicorn's

    configure_logging._otel_assist = True  # type: ignore[attr-defined]
    Config.configure_logging = configure_logging  # type: ignore[method-assign]


def _flush_before_uvicorn_exits() -> None:
    """uvicorn (0.29+) ends a SIGTERM/SIGINT shutdown by restoring the previous signal
    handler and raising the signal again, so with the default handler the process dies
    by the signal and ``atexit`` (where telemetry is flushed) never runs: the records of
    the last export interval, up to a second of logs and the shutdown lines, were lost
    without being counted (found by ``bench/http_logging.py``, which counts every record
    at the Collector). This flushes logs and metrics just before that happens, bounded
    by the same 5 s as the exit hook. A server stopped without a signal (in-process, in
    tests) is left alone."""
    try:
        from uvicorn.server import Server
    except ImportError:
        return
    original = getattr(Server, "capture_signals", None)
    if original is None or getattr(original, "_otel_assist", False):
        return

    @contextlib.contextmanager
    def capture_signals(self: Any) -> Iterator[None]:
        with original(self):
            try:
                yield
            finally:
                if getattr(self, "_captured_signals", None):
                    from otel_assist import telemetry  # configure() imports this module

                    current = telemetry.current()
                    if current is not None:
                        current.force_flush(timeout_s=5.0)

    capture_signals._otel_assist = True  # type: ignore[attr-defined]
    Server.capture_signals = capture_signals  # type: ignore[method-assign]


def get_logger(*args: Any, **initial_values: Any) -> Any:
    """``structlog.get_logger``, re-exported so service code imports one package."""
    return structlog.get_logger(*args, **initial_values)
