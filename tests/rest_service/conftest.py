"""rest_service fixtures: the app over the real Postgres (session server) or a SQLite file.

Every test gets a fresh database (a new Postgres database, or a new SQLite file) migrated
with the real Alembic migration, and an httpx client on the ASGI app with its lifespan
running. ``backend`` parametrises a test over both dialects.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from rest_service.app import create_app
from rest_service.core.config import Settings
from tests import servers

TOKEN = "test-full-token-" + "x" * 16
READ_TOKEN = "test-read-token-" + "r" * 16
INGEST_TOKEN = "test-ingest-token-" + "i" * 16
API = "/api/v1"


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'rest.sqlite3'}"
    pg: servers.Postgres = request.getfixturevalue("postgres")
    return pg.create_database(f"rs_{uuid.uuid4().hex[:12]}")


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "rest_service_token": TOKEN,
        "rest_service_read_token": READ_TOKEN,
        "rest_service_ingest_token": INGEST_TOKEN,
        "migrate_on_start": True,
        "retention_enabled": False,
        "queue_names": ["to_secretary", "to_telegram"],
    }
    values.update(overrides)
    return Settings(**values)


class Running:
    """An app with its lifespan entered, and a client authenticated with the full token."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client
        self.capture: Any = None

    @property
    def db(self) -> Any:
        return self.app.state.db


async def start(settings: Settings) -> AsyncIterator[Running]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://rest", headers=auth(), timeout=30
        ) as client:
            yield Running(app, client)


@pytest.fixture
async def svc(database_url: str, otel_capture: Any) -> AsyncIterator[Running]:
    """The app on a fresh database; telemetry captured in memory (no OTLP export)."""
    async for running in start(make_settings(database_url)):
        running.capture = otel_capture
        yield running


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite+aiosqlite:///{tmp_path / 'rest.sqlite3'}"
