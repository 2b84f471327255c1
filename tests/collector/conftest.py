"""The real Collector (built from collector/manifest.yaml) and what it talks to, on loopback.

- ``collector_binary``: runs ``collector/build.sh`` once per session (cached by manifest hash).
- ``LokiStandIn`` (``tests/loki/standin.py``): Loki cannot run here, so a stand-in that
  follows Loki's documented OTLP ingest and query rules takes its place. It can be stopped
  and started again on the same port (an outage).
- ``Stack``: Collector + real Prometheus (remote-write target, and scraping the Collector's
  own metrics) + the Loki stand-in + instrumented service processes
  (``tests/collector/service_app.py``), each process its own ``service.instance.id``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import metric_reader, servers
from tests.loki.standin import LokiStandIn

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "collector" / "config.yaml"
BUILD = ROOT / "collector" / "build.sh"


# --------------------------------------------------------------------------- the binary


@pytest.fixture(scope="session")
def collector_binary() -> Path:
    """Build (or find in the cache) otelcol-assist; fail with the script's message if not."""
    started = time.monotonic()
    result = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=1500)
    if result.returncode != 0:
        pytest.fail(f"collector/build.sh failed:\n{result.stderr[-4000:]}", pytrace=False)
    binary = Path(result.stdout.strip().splitlines()[-1])
    assert binary.is_file() and os.access(binary, os.X_OK), binary
    print(f"collector binary {binary} ready in {time.monotonic() - started:.1f}s")
    return binary


# The Loki stand-in lives in tests/loki/standin.py (its rules are tested there).


# --------------------------------------------------------------------------- the Collector


@dataclass
class Collector:
    process: servers.ManagedProcess
    otlp_http_port: int
    metrics_port: int
    health_port: int
    storage_dir: Path

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.otlp_http_port}"

    def own_metrics(self, name: str, **labels: str) -> float:
        """One of the Collector's internal metrics straight from its :8888 endpoint, summed
        over the series with ``labels`` (e.g. data_type="logs")."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        return metric_reader.value(text, name, **labels)


def start_collector(
    binary: Path,
    workdir: Path,
    loki_endpoint: str,
    remote_write_url: str,
    extra_env: dict[str, str] | None = None,
) -> Collector:
    """Run the built Collector with collector/config.yaml, every address set through env."""
    workdir.mkdir(parents=True, exist_ok=True)
    ports = {
        "otlp_http": servers.free_port(),
        "otlp_grpc": servers.free_port(),
        "health": servers.free_port(),
        "metrics": servers.free_port(),
    }
    storage = workdir / "file_storage"
    env = {
        "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['otlp_http']}",
        "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['otlp_grpc']}",
        "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{ports['health']}",
        "OTELCOL_METRICS_HOST": "127.0.0.1",
        "OTELCOL_METRICS_PORT": str(ports["metrics"]),
        "OTELCOL_STORAGE_DIR": str(storage),
        "LOKI_OTLP_ENDPOINT": loki_endpoint,
        "PROMETHEUS_REMOTE_WRITE_ENDPOINT": remote_write_url,
        # Container logs (file_log/containers): an empty directory unless a test writes
        # Docker's layout there, never the host's own /var/lib/docker.
        "OTELCOL_CONTAINER_LOGS": str(workdir / "containers" / "*" / "*-json.log*"),
        **(extra_env or {}),
    }
    health = f"http://127.0.0.1:{ports['health']}/"
    process = servers.ManagedProcess(
        "otelcol-assist",
        [str(binary), f"--config={CONFIG}"],
        ready=lambda: servers.http_ok(health),
        log_path=workdir / "collector.log",
        env=env,
        start_timeout=30,
    ).start()
    return Collector(process, ports["otlp_http"], ports["metrics"], ports["health"], storage)


# --------------------------------------------------------------------------- services


@dataclass
class ServiceProcess:
    """One worker process of an instrumented service (tests/collector/service_app.py)."""

    service: str
    process: servers.ManagedProcess
    port: int
    latencies: list[float] = field(default_factory=list)

    def work(self, seq: int, user_id: int, correlation_id: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/work/{seq}?user_id={user_id}",
            method="POST",
            headers={"X-Correlation-ID": correlation_id},
        )
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as resp:
            body = json.loads(resp.read())
            assert resp.status == 200
        self.latencies.append(time.perf_counter() - start)
        return body


def start_service(
    service: str, workdir: Path, collector: Collector, export_interval_ms: int = 1000
) -> ServiceProcess:
    port = servers.free_port()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_endpoint,
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_METRIC_EXPORT_INTERVAL": str(export_interval_ms),
        "OTEL_ASSIST_ENVIRONMENT": "test",
        "OTEL_ASSIST_LOG_EXPORT_INTERVAL": "200",
        "OTEL_ASSIST_LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
        # Nothing inherited from the test's own environment may add resource attributes.
        "OTEL_SERVICE_NAME": service,
        "OTEL_RESOURCE_ATTRIBUTES": "",
    }
    workdir.mkdir(parents=True, exist_ok=True)
    process = servers.ManagedProcess(
        f"{service}:{port}",
        [
            sys.executable,
            "-m",
            "tests.collector.service_app",
            "--service",
            service,
            "--port",
            str(port),
        ],
        ready=lambda: servers.http_ok(f"http://127.0.0.1:{port}/health"),
        log_path=workdir / f"{service}-{port}.log",
        env=env,
        start_timeout=60,
    ).start()
    return ServiceProcess(service, process, port)


# --------------------------------------------------------------------------- Prometheus


def prometheus_config(collector_metrics_port: int) -> str:
    # Scrape the Collector's own telemetry fast so the test sees it within seconds.
    return (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: otel-collector\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{collector_metrics_port}']\n"
    )


def prom_query(prom: servers.Prometheus, expr: str, at: float | None = None) -> list[dict]:
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    url = f"{prom.url}/api/v1/query?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        payload = json.loads(resp.read())
    assert payload["status"] == "success", payload
    return payload["data"]["result"]


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    collector: Collector
    prometheus: servers.Prometheus
    loki: LokiStandIn
    workdir: Path
    services: list[ServiceProcess] = field(default_factory=list)

    def add_service(self, name: str) -> ServiceProcess:
        svc = start_service(name, self.workdir / "services", self.collector)
        self.services.append(svc)
        return svc

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        return prom_query(self.prometheus, expr, at)


@pytest.fixture
def stack(collector_binary: Path, tmp_path: Path) -> Iterator[Stack]:
    loki = LokiStandIn().start()
    # Prometheus first (its port goes into the Collector's env), then point its scrape
    # config at the Collector's metrics port and reload.
    prom = servers.start_prometheus(tmp_path / "prometheus", prometheus_config(1))
    collector = start_collector(
        collector_binary, tmp_path / "collector", loki.endpoint, prom.remote_write_url
    )
    prom.config_path.write_text(prometheus_config(collector.metrics_port))
    prom.reload()
    stack = Stack(collector, prom, loki, tmp_path)
    try:
        yield stack
    finally:
        for svc in stack.services:
            svc.process.stop()
        collector.process.stop()
        prom.process.stop()
        loki.stop()
