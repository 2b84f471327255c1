"""The rest_service FastAPI application: ``create_app()`` and, lazily, ``app``.

``uvicorn rest_service.app:app`` and ``rest-service serve`` both end up here. The app
refuses to be created without an API token unless REST_SERVICE_DEV_MODE is set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

import otel_assist
from otel_assist.web.asgi import instrument_app
from rest_service.admin import monitor_pages
from rest_service.admin import router as admin_router
from rest_service.admin.views import unknown_admin_page
from rest_service.api import body, errors
from rest_service.api.main import api_router
from rest_service.api.routes import health
from rest_service.core.auth_limit import FailedAuthLimiter
from rest_service.core.config import Settings, get_settings
from rest_service.core.db import Database, safe_url
from rest_service.core.heap import serving_gc
from rest_service.live_queues import LiveQueues
from rest_service.monitor_sweeper import SweeperSettings

log = structlog.get_logger("rest_service")

DESCRIPTION = """History store and API for cron-job executions, Redis queue messages and user
memory. Services ship lifecycle and queue events in idempotent batches; operators and the
admin pages read them. Authenticate with `Authorization: Bearer <token>`."""


def create_app(settings: Settings | None = None, *, telemetry: bool = True) -> FastAPI:
    """Build the app. Raises ``RuntimeError`` if no token is configured outside dev mode."""
    settings = settings or get_settings()
    settings.check_startable()
    sweeper_settings = SweeperSettings.from_settings(settings)
    if telemetry:
        otel_assist.configure(service_name="rest_service")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings)
        app.state.db = db
        app.state.live_queues = LiveQueues(settings.redis_url)
        if settings.uses_embedded_sqlite:
            log.info(
                "using the embedded SQLite database; set DATABASE_URL for Postgres",
                phase="startup",
                database=db.url.split("///", 1)[-1],
            )
        else:
            log.info("using database", phase="startup", database=safe_url(db.url))
        if not settings.auth_enabled:
            log.warning("REST_SERVICE_DEV_MODE: authentication is disabled", phase="startup")
        if settings.should_migrate_on_start:
            from rest_service.core.migrate import upgrade

            await upgrade(db)
            log.info("migrations applied", phase="startup")
        retention: asyncio.Task[None] | None = None
        if settings.retention_enabled:
            from rest_service.retention import run_forever

            retention = asyncio.create_task(run_forever(db, settings), name="retention")
        sweeper: asyncio.Task[None] | None = None
        if sweeper_settings.enabled:
            from rest_service.monitor_sweeper import run_forever as sweep_forever

            sweeper = asyncio.create_task(
                sweep_forever(db, sweeper_settings, settings.max_payload_bytes),
                name="monitor-sweeper",
            )
        try:
            with serving_gc(settings.gc_threshold):
                yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            if retention is not None:
                retention.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await retention
            await app.state.live_queues.close()
            await db.dispose()

    app = FastAPI(
        title="rest_service",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.auth_limiter = FailedAuthLimiter(
        settings.auth_failure_limit, settings.auth_failure_window_seconds
    )
    errors.install(app)
    body.document(app)
    app.include_router(health.router)
    app.include_router(api_router)
    app.include_router(admin_router)  # /admin pages (issue 7)
    app.include_router(monitor_pages.router)  # /admin/monitors (issue 15)
    # After the admin router: a styled 404 for unknown /admin paths, and / leads to the
    # admin pages instead of answering {"detail":"Not Found"}.
    app.add_api_route(
        "/admin/{path:path}", unknown_admin_page, methods=["GET"], include_in_schema=False
    )
    app.add_api_route("/", _root, methods=["GET"], include_in_schema=False)
    app.add_middleware(errors.BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    instrument_app(app)
    return app


async def _root() -> RedirectResponse:
    """``GET /``: where a person opening the service's address wants to go."""
    return RedirectResponse("/admin", status_code=307)


_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    """``rest_service.app:app`` is built on first access, so importing this module (tests,
    the CLI) does not require a token in the environment."""
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(name)
