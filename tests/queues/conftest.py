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
from tests import servers

REPO = Path(__file__).resolve().parents[2]
TOKEN = "queues-test-token-0123456789"


class MetricView:
    """Reads the data points of the catalog installed for one test."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self.reader = reader

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        out: list[tuple[dict[str, Any], Any]] = []
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        out.extend((dict(p.attributes or {}), p) for p in m.data.data_points)
        return out

    def value(self, name: str, **attrs: Any) -> float:
        """Sum of counter values / last gauge value over points matching ``attrs``."""
        total = 0.0
        for a, p in self.points(name):
            if all(a.get(k) == v for k, v in attrs.items()):
                total += getattr(p, "value", 0.0)
        return total

    def histogram(self, name: str, **attrs: Any) -> tuple[int, float, float, float]:
        """(count, sum, min, max) over matching points."""
        count, total, lo, hi = 0, 0.0, float("inf"), float("-inf")
        for a, p in self.points(name):
            if all(a.get(k) == v for k, v in attrs.items()):
                count += p.count
                total += p.sum
                lo = min(lo, p.min)
                hi = max(hi, p.max)
        return count, total, lo, hi


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
