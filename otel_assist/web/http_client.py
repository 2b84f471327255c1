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
import importlib.abc
import importlib.machinery
import sys
import threading
import time
from types import ModuleType
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
    """Patch httpx once per process: now if it is imported already, else as soon as it is.

    Why not import it here: httpx (with httpcore, h11, and its command line's click and
    rich when those are installed) costs a service that makes no HTTP calls about 5 MiB
    of RSS (``bench/rss.py``)."""
    httpx = sys.modules.get("httpx")
    if httpx is not None:
        _patch(httpx)
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``httpx`` is imported, it lets the other finders locate
    it and wraps the loader so the module is patched right after it runs."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "httpx":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _PatchingLoader(spec.loader)
        return spec


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> ModuleType | None:
        module: ModuleType | None = self.loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        _patch(module)


def _patch(httpx: Any) -> None:
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
    httpx.Client.send = send
    httpx.AsyncClient.send = asend
