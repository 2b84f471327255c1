"""HTTP server telemetry for Starlette/FastAPI: correlation_id in, metrics and access log out.

A lean pure-ASGI middleware instead of opentelemetry-instrumentation-fastapi: the stock
instrumentation builds a span per request (and two more per response body message) even
with tracing off, which halves a small service's throughput; see ``bench/http_overhead.py``.
This keeps the semantic-convention names (``http.server.request.duration``,
``http.server.active_requests``) so dashboards work with either.

It wraps the *outermost* layer of the app, outside Starlette's ServerErrorMiddleware, so a
500 produced by an unhandled exception still carries ``X-Correlation-ID``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from opentelemetry import context

from otel_assist import correlation
from otel_assist.event_types import LEVELS, LogEventType, emit, wanted
from otel_assist.metrics import http as http_metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_WANTED = {b"baggage", b"x-correlation-id", b"x-request-id"}
_CID_HEADER = correlation.HEADER.encode()


def _request_context(raw: Iterable[tuple[bytes, bytes]]) -> tuple[context.Context, str]:
    """The request's context and correlation_id from its raw ASGI headers: the caller's
    baggage / X-Correlation-ID / X-Request-ID when sent (:func:`correlation.extract_from_headers`
    decides), else a fresh id without building the header mapping."""
    found: dict[str, str] | None = None
    for name, value in raw:
        lowered = name.lower()
        if lowered in _WANTED:
            if found is None:
                found = {}
            found[lowered.decode()] = value.decode("latin-1")
    if found is None:
        return correlation.fresh_context()
    return correlation.extract_from_headers(found)


def route_template(scope: Scope) -> str | None:
    """The matched route's template (``/api/v1/jobs/{job_id}``), never the raw path.

    FastAPI >= 0.163 sets ``scope["route"]`` to the route as declared on its router, without
    the prefixes of the routers that include it; the full template is on the effective
    route context it records in ``scope["fastapi"]``, so that is read first.
    """
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        effective = fastapi_scope.get("effective_route_context")
        if effective is not None:
            full = getattr(effective.starlette_route, "path_format", None) or getattr(
                effective, "path_format", None
            )
            if isinstance(full, str):
                return full
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else None


class TelemetryMiddleware:
    """Correlation, ``http.server.*`` metrics and one access-log line per request."""

    def __init__(
        self,
        app: ASGIApp,
        excluded_urls: Iterable[str] = ("/metrics", "/health", "/ready"),
        access_log: bool = True,
    ) -> None:
        self.app = app
        self.excluded = frozenset(excluded_urls)
        self.access_log = access_log
        self._logger: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # One coroutine per request (this runs for every request: each extra frame, closure
        # or call here is a visible share of a small handler, see bench/http_overhead.py).
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx, cid = _request_context(scope["headers"])
        token = context.attach(ctx)
        try:
            if scope["path"] in self.excluded:
                await self.app(scope, receive, _echo(send, cid))
                return
            recorder = http_metrics.current()
            method = scope["method"]
            active_method = recorder.request_started(method)
            status = 500
            started = False
            cid_header = (_CID_HEADER, cid.encode())

            async def send_with_header(message: Message) -> None:
                nonlocal status, started
                if message["type"] == "http.response.start":
                    status = message["status"]
                    started = True
                    message["headers"] = [*message.get("headers", ()), cid_header]
                await send(message)

            if wanted(LogEventType.REQUEST_IN):  # off by default: no keyword dict
                emit(
                    self._logger_or_default(),
                    LogEventType.REQUEST_IN,
                    "request in",
                    http_method=method,
                    http_target=scope["path"],
                )
            start = time.perf_counter()
            try:
                await self.app(scope, receive, send_with_header)
            except Exception:
                # Logged here, inside the request's context, so the traceback line carries
                # its correlation_id. Once Starlette has sent the 500 the exception has
                # nowhere useful to go: re-raising would only make uvicorn log it again.
                self._logger_or_default().exception(
                    "unhandled exception", event_type="error", http_route=route_template(scope)
                )
                if not started:
                    raise
            finally:
                elapsed = time.perf_counter() - start
                route = route_template(scope)
                recorder.request_finished(active_method, method, route, status, elapsed)
                if self.access_log or LogEventType.RESPONSE in LEVELS.info:
                    self._log(method, route or scope["path"], status, elapsed)
        finally:
            context.detach(token)

    def _logger_or_default(self) -> Any:
        if self._logger is None:
            import structlog

            self._logger = structlog.get_logger("otel_assist.access")
        return self._logger

    def _log(self, method: str, route: str, status: int, elapsed: float) -> None:
        logger = self._logger_or_default()
        log = logger.error if status >= 500 else logger.info
        log(
            "request",
            event_type="response",
            http_method=method,
            http_route=route,
            status_code=status,
            duration_ms=round(elapsed * 1000, 3),
        )


def _echo(send: Send, cid: str) -> Send:
    header = (_CID_HEADER, cid.encode())

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), header]
        await send(message)

    return wrapped


def metrics_response_body() -> tuple[bytes, str]:
    """The Prometheus exposition of this process's metrics and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    from otel_assist.metrics import workers as worker_metrics

    store = worker_metrics.current()
    if store is not None:  # several workers: every worker's counts, merged
        return store.exposition(), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


async def metrics_endpoint(_request: Any) -> Any:
    """A Starlette endpoint serving ``/metrics``."""
    from starlette.responses import Response

    body, content_type = metrics_response_body()
    return Response(body, media_type=content_type)


def _disable_native_fastapi_telemetry(app: Any) -> None:
    """FastAPI >= 0.16x records its own ``http.server.request.duration`` and exception log
    records as soon as a global MeterProvider/LoggerProvider exists. Next to this middleware
    that would count every request twice (under another scope) and log every unhandled
    exception twice, and it costs about as much as a hello-world handler. Our middleware
    covers all three, so the app's native telemetry is switched off."""
    config = getattr(app, "_telemetry", None)
    if isinstance(config, dict):
        config.update({"tracing": False, "metrics": False, "logs": False})


def instrument_app(
    app: Any,
    metrics_path: str | None = "/metrics",
    excluded_urls: Iterable[str] | None = None,
    access_log: bool | None = None,
) -> Any:
    """Instrument a Starlette/FastAPI app in place and return it.

    Idempotent. Adds a ``/metrics`` route unless ``metrics_path`` is None or the app has
    one. Defaults come from the settings of the current configure().
    """
    if getattr(app, "_otel_assist_instrumented", False):
        return app
    from otel_assist.telemetry import current_settings

    settings = current_settings()
    excluded = tuple(excluded_urls) if excluded_urls is not None else settings.excluded_urls
    log_requests = settings.access_log if access_log is None else access_log
    original_build = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        return TelemetryMiddleware(original_build(), excluded, log_requests)

    app.build_middleware_stack = build_middleware_stack
    app.middleware_stack = None
    _disable_native_fastapi_telemetry(app)
    if metrics_path and not any(getattr(r, "path", None) == metrics_path for r in app.routes):
        app.add_route(metrics_path, metrics_endpoint, include_in_schema=False)
    app._otel_assist_instrumented = True
    return app
