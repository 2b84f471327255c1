"""Outgoing HTTP: every httpx request carries the current ``baggage`` header and logs one
``request_out`` line (method, host, status, duration; never the path or query, which may
hold ids or tokens). The library's own threads (``otel-assist-*``: the history shipper)
do not log their calls.

A small patch of ``httpx.Client.send`` / ``httpx.AsyncClient.send`` rather than
opentelemetry-instrumentation-httpx, which would wrap each request in a (no-op) span and
inject trace headers we do not use. A header the caller set explicitly is left alone.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

from otel_assist.correlation import baggage_header
from otel_assist.event_types import LogEventType, emit

_PATCHED_FLAG = "_otel_assist_baggage"


def _with_baggage(request: Any) -> None:
    if "baggage" not in request.headers:
        value = baggage_header()
        if value:
            request.headers["baggage"] = value


_log: Any = None


def _logged(request: Any, status: int | None, error: str | None, started: float) -> None:
    global _log
    if threading.current_thread().name.startswith("otel-assist-"):
        return
    if _log is None:
        import structlog

        _log = structlog.get_logger("otel_assist.http_client")
    try:
        host = request.url.host
    except Exception:
        host = None
    emit(
        _log,
        LogEventType.REQUEST_OUT,
        "request out",
        http_method=request.method,
        server_address=host,
        status_code=status,
        error_type=error,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )


def install() -> None:
    """Patch httpx once per process (no-op when httpx is not installed)."""
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx is a dependency, but stay optional
        return
    if getattr(httpx.Client.send, _PATCHED_FLAG, False):
        return
    sync_send = httpx.Client.send
    async_send = httpx.AsyncClient.send

    @functools.wraps(sync_send)
    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        _with_baggage(request)
        started = time.perf_counter()
        try:
            response = sync_send(self, request, *args, **kwargs)
        except BaseException as exc:
            _logged(request, None, type(exc).__name__, started)
            raise
        _logged(request, response.status_code, None, started)
        return response

    @functools.wraps(async_send)
    async def asend(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        _with_baggage(request)
        started = time.perf_counter()
        try:
            response = await async_send(self, request, *args, **kwargs)
        except BaseException as exc:
            _logged(request, None, type(exc).__name__, started)
            raise
        _logged(request, response.status_code, None, started)
        return response

    setattr(send, _PATCHED_FLAG, True)
    setattr(asend, _PATCHED_FLAG, True)
    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]
