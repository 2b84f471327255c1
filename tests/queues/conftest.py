"""Fixtures for the queue, job and history tests: an in-memory metric catalog, a private
Redis that tests may stop, and a real rest_service (uvicorn subprocess) over the session's
real Postgres."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_assist.metrics import instruments as metrics
from tests import metric_reader, servers

REPO = Path(__file__).resolve().parents[2]
TOKEN = "queues-test-token-0123456789"


class MetricView:
    """The catalog installed for one test, read through :mod:`tests.metric_reader`."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self.reader = reader

    def value(self, name: str, **attrs: Any) -> float:
        return metric_reader.value(self.reader, name, **attrs)

    def histogram(self, name: str, **attrs: Any) -> metric_reader.Histogram:
        return metric_reader.histogram(self.reader, name, **attrs)


@pytest.fixture
def metric_view() -> Iterator[MetricView]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    # A reader passes on a collection only when the SDK itself has a data point (see
    # otel_assist._otel_compat.attach_metric_producer); configure() always has one
    # (log_records), this bare provider gets one the same way.
    provider.get_meter("test").create_observable_counter(
        "test_anchor", [lambda _options: [Observation(0)]]
    )
    catalog = metrics.catalog()
    catalog.reset()  # the process's catalog, from zero, as configure() would start it
    catalog.attach(reader)
    try:
        yield MetricView(reader)
    finally:
        provider.shutdown()


@pytest.fixture
def queue_name() -> str:
    return "q-" + uuid.uuid4().hex[:10]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[servers.Redis]:
    """A Redis only this test uses, so stopping it disturbs nobody else."""
    r = servers.start_redis(tmp_path / "redis")
    yield r
    r.process.stop()


@dataclass
class RestService:
    process: servers.ManagedProcess
    port: int
    database: str
    postgres: servers.Postgres

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def sql(self, query: str) -> str:
        return self.postgres.psql(query, database=self.database).strip()

    def count(self, query: str) -> int:
        return int(self.sql(query) or 0)


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def rest_service(postgres: servers.Postgres, server_root: Path) -> Iterator[RestService]:
    name = "queues_history"
    db_url = postgres.create_database(name)
    port = servers.free_port()
    workdir = server_root / "rest_service_queues"
    workdir.mkdir(parents=True, exist_ok=True)
    env = subprocess_env(
        DATABASE_URL=db_url,
        REST_SERVICE_TOKEN=TOKEN,
        MIGRATE_ON_START="true",
        RETENTION_ENABLED="false",
        OTEL_LOGS_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_ASSIST_LOG_LEVEL="WARNING",
    )
    proc = servers.ManagedProcess(
        "rest_service",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "rest_service.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        ready=lambda: servers.http_ok(f"http://127.0.0.1:{port}/ready"),
        log_path=workdir / "rest_service.log",
        env=env,
        start_timeout=60,
    )
    # ManagedProcess merges os.environ; blank out inherited OTEL_* through env overrides.
    proc.start()
    svc = RestService(proc, port, name, postgres)
    r = httpx.get(
        f"{svc.api}/queue-stats", headers={"authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert r.status_code == 200, r.text
    yield svc
    proc.stop()
