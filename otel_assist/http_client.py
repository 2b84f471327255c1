"""Outgoing HTTP: every httpx request carries the current ``baggage`` header.

A small patch of ``httpx.Client.send`` / ``httpx.AsyncClient.send`` rather than
opentelemetry-instrumentation-httpx, which would wrap each request in a (no-op) span and
inject trace headers we do not use. A header the caller set explicitly is left alone.
"""

from __future__ import annotations

import functools
from typing import Any

from otel_assist.correlation import baggage_header

_PATCHED_FLAG = "_otel_assist_baggage"


def _with_baggage(request: Any) -> None:
    if "baggage" not in request.headers:
        value = baggage_header()
        if value:
            request.headers["baggage"] = value


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
        return sync_send(self, request, *args, **kwargs)

    @functools.wraps(async_send)
    async def asend(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        _with_baggage(request)
        return await async_send(self, request, *args, **kwargs)

    setattr(send, _PATCHED_FLAG, True)
    setattr(asend, _PATCHED_FLAG, True)
    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]
