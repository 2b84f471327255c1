"""Shared bench helpers for rest_service: a private Postgres and rest_service under uvicorn.

Both run as real processes in a temporary directory; nothing is mocked. The service runs
the way ``rest-service serve`` runs it (uvloop, httptools, one worker).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests import servers
from tests.polling import poll

TOKEN = "bench-token-0123456789abcdef"


@dataclass
class Service:
    url: str
    database_url: str
    dsn: str
    pg: servers.Postgres
    proc: subprocess.Popen[bytes]


def migrate(database_url: str) -> None:
    from rest_service.core import migrate as m
    from rest_service.core.config import Settings
    from rest_service.core.db import Database

    async def go() -> None:
        db = Database(Settings(database_url=database_url))
        await m.upgrade(db)
        await db.dispose()

    asyncio.run(go())


@contextmanager
def rest_service_on_postgres(
    extra_env: dict[str, str] | None = None,
    *,
    cluster: servers.Postgres | None = None,
    database: str | None = None,
) -> Iterator[Service]:
    """A fresh Postgres cluster, migrated, and rest_service in a uvicorn subprocess. With
    ``cluster`` and ``database``: a fresh database in that (running) cluster instead, so
    two services can be measured side by side against one Postgres."""
    work = Path(tempfile.mkdtemp(prefix="otel-assist-bench-"))
    pg = cluster or servers.start_postgres(work / "pg")
    try:
        if cluster is not None and database is not None:
            database_url = pg.create_database(database)
        else:
            database_url = pg.sqlalchemy_url
        migrate(database_url)
        dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        port = servers.free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REST_SERVICE_TOKEN": TOKEN,
            "RETENTION_ENABLED": "false",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "rest_service",
            **(extra_env or {}),
        }
        log = (work / "rest_service.log").open("wb")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "rest_service.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            poll(lambda: servers.http_ok(f"http://127.0.0.1:{port}/ready"), 60, "rest_service")
            yield Service(f"http://127.0.0.1:{port}", database_url, dsn, pg, proc)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    finally:
        if cluster is None:
            pg.process.stop()
            _remove_cluster(pg, work)
        else:  # the cluster is the caller's; only this service's directory (its log) goes
            shutil.rmtree(work, ignore_errors=True)


def _remove_cluster(pg: servers.Postgres, work: Path) -> None:
    """Delete the stopped cluster's files: a 1M-row stats_scaling cluster is over 1 GB, and
    leftovers of earlier runs filled the shared disk. As root, tests/servers.py puts the
    cluster in a directory of its own (its ``-D`` argument's parent), not under ``work``."""
    argv = pg.process.argv
    datadir = Path(argv[argv.index("-D") + 1]) if "-D" in argv else None
    for path in {work, datadir.parent if datadir is not None else work}:
        if path.name.startswith(("otel-assist-pg-", "otel-assist-bench-")):
            shutil.rmtree(path, ignore_errors=True)


def timed(fn_start: float) -> float:
    return time.perf_counter() - fn_start
