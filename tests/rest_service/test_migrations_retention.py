"""Alembic up/down on both dialects (and no drift from the models); retention purges in
bounded batches and keeps the rollups equal to the raw rows."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from rest_service.core import migrate
from rest_service.core.config import Settings
from rest_service.core.db import Database
from rest_service.partitions import is_partition_table
from rest_service.retention import purge
from tests.rest_service.conftest import API, Running, make_settings, start

TABLES = {
    "job_executions",
    "queue_message_logs",
    "user_memories",
    "queue_message_hourly",
    "job_hourly",
    "job_duration_hourly",
}


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def _drift(db: Database) -> list[Any]:
    def compare(conn: Any) -> list[Any]:
        # the day partitions of the history tables are not in the models (0002)
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": False,
                "include_name": lambda name, type_, _parent: (
                    not (type_ == "table" and is_partition_table(name))
                ),
            },
        )
        return list(compare_metadata(ctx, SQLModel.metadata))

    async with db.engine.connect() as conn:
        return await conn.run_sync(compare)


async def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    db = Database(Settings(database_url=database_url))
    try:
        await migrate.upgrade(db)
        assert await _tables(db) >= TABLES
        assert await _drift(db) == []  # the migration creates exactly what the models say
        await migrate.downgrade(db, "base")
        assert not (TABLES & await _tables(db))
        await migrate.upgrade(db)
        assert await _tables(db) >= TABLES
    finally:
        await db.dispose()


def test_cli_migrate(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from rest_service import cli
    from rest_service.core import config

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    config.get_settings.cache_clear()
    try:
        assert cli.main(["migrate"]) == 0
        assert cli.main(["migrate", "--downgrade", "base"]) == 0
        assert cli.main(["migrate"]) == 0
    finally:
        config.get_settings.cache_clear()

    async def tables() -> set[str]:
        db = Database(Settings(database_url=sqlite_url))
        try:
            return await _tables(db)
        finally:
            await db.dispose()

    assert asyncio.run(tables()) >= TABLES


def test_serve_refuses_to_start_without_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from rest_service import cli
    from rest_service.core import config

    for name in (
        "REST_SERVICE_TOKEN",
        "REST_SERVICE_READ_TOKEN",
        "REST_SERVICE_INGEST_TOKEN",
        "REST_SERVICE_DEV_MODE",
    ):
        monkeypatch.delenv(name, raising=False)
    config.get_settings.cache_clear()
    try:
        assert cli.main(["serve"]) == 2
    finally:
        config.get_settings.cache_clear()


async def test_retention_deletes_old_rows_in_batches(database_url: str, otel_capture: Any) -> None:
    settings = make_settings(database_url, retention_days=7, retention_batch_size=7)
    async for svc in start(settings):
        await _load(svc)
        async with svc.db.session() as s:
            before = (await s.execute(text("SELECT count(*) FROM queue_message_logs"))).scalar()
        done = await purge(svc.db, settings)
        assert done["queue_message_logs"] == 30 and done["job_executions"] == 12
        assert done["queue_message_hourly"] > 0
        async with svc.db.session() as s:
            after = (await s.execute(text("SELECT count(*) FROM queue_message_logs"))).scalar()
            rolled = (await s.execute(text("SELECT sum(count) FROM queue_message_hourly"))).scalar()
            jobs = (await s.execute(text("SELECT count(*) FROM job_executions"))).scalar()
            job_runs = (await s.execute(text("SELECT sum(runs) FROM job_hourly"))).scalar()
        assert before == 50 and after == 20 and rolled == 20
        assert jobs == 8 and job_runs == 8
        stats = (await svc.client.get(f"{API}/queue-stats")).json()
        assert sum(q["total_messages"] for q in stats) == 20
        assert (await purge(svc.db, settings))["queue_message_logs"] == 0


async def _load(svc: Running) -> None:
    now = datetime.now(UTC)
    events = []
    for i in range(50):
        age = timedelta(days=9) if i < 30 else timedelta(days=2)
        events.append(
            {
                "event_id": uuid.uuid4().hex,
                "queue_name": "to_secretary",
                "direction": "push",
                "enqueued_at": (now - age).isoformat(),
            }
        )
    r = await svc.client.post(f"{API}/queue-stats/messages/batch", json={"events": events})
    assert r.json()["inserted"] == 50
    jobs = []
    for i in range(20):
        age = timedelta(days=8) if i < 12 else timedelta(hours=5)
        jobs.append(
            {
                "event_id": f"j{i}",
                "run_id": f"r{i}",
                "job_id": "j",
                "job_type": "t",
                "kind": "scheduled",
                "at": (now - age).isoformat(),
            }
        )
    assert (
        await svc.client.post(f"{API}/job-executions/events", json={"events": jobs})
    ).status_code == 200


async def test_retention_task_runs_periodically(sqlite_url: str, otel_capture: Any) -> None:
    settings = make_settings(sqlite_url, retention_enabled=True, retention_interval_seconds=0.2)
    async for svc in start(settings):
        await _load(svc)
        for _ in range(50):
            async with svc.db.session() as s:
                n = (await s.execute(text("SELECT count(*) FROM queue_message_logs"))).scalar()
            if n == 20:
                break
            await asyncio.sleep(0.1)
        assert n == 20
