"""collector_tiers: log records/s through the two-tier Collector (agent -> gateway) against the
single-tier Collector (collector/config.yaml), same machine, same producer, same sink.

The real otelcol-assist binary (collector/build.sh) runs each pipeline; a producer pushes
pre-serialised OTLP/HTTP requests of BATCH records from CONCURRENCY threads, and the rate is
records / wall time until the last Collector in the chain reports them all exported
(``otelcol_exporter_sent_log_records_total``). The sink (a Loki stand-in that answers 200)
keeps the raw, gzip-compressed pushes and decodes them only after the timing, to check that
every record arrived. The two sides alternate in ROUNDS rounds (this shared VM's speed
drifts).

What it tells docs/scaling.md: how many log records per second one Collector process (and
one agent + one gateway) moves on one core-pair here, i.e. when a host needs more than one.
Ratio: two-tier / single-tier (below 1: the extra hop's cost; the gain is elsewhere:
durability at the agent and gateways that scale out).
"""

from __future__ import annotations

import gzip
import os
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import (
    SEVERITY_NUMBER_INFO,
    LogRecord,
    ResourceLogs,
    ScopeLogs,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from bench import BenchResult
from tests import servers

ROOT = Path(__file__).resolve().parent.parent
BATCH = 1000
REQUESTS = int(os.environ.get("BENCH_TIERS_REQUESTS", "60"))  # per round
CONCURRENCY = 4
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


class Sink:
    """A Loki stand-in (NOT Loki) for throughput: answers 200, keeps the raw bodies."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.bodies.append((self.headers.get("Content-Encoding", ""), body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/otlp"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def records(self) -> int:
        total = 0
        for encoding, body in self.bodies:
            raw = gzip.decompress(body) if encoding == "gzip" else body
            request = ExportLogsServiceRequest.FromString(raw)
            total += sum(
                len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs
            )
        return total


def exported(metrics_port: int) -> float:
    """otelcol_exporter_sent_log_records_total of the Collector on ``metrics_port``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("otelcol_exporter_sent_log_records_total")
    )


def binary() -> str:
    out = subprocess.run(
        [str(ROOT / "collector" / "build.sh")], capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def payloads(n: int) -> list[bytes]:
    """Requests shaped like a service's export: one resource, BATCH ~200-byte records."""
    out = []
    resource = Resource(
        attributes=[KeyValue(key="service.name", value=AnyValue(string_value="bench"))]
    )
    for r in range(n):
        records = [
            LogRecord(
                time_unix_nano=time.time_ns(),
                severity_text="INFO",
                severity_number=SEVERITY_NUMBER_INFO,
                body=AnyValue(string_value=f"request handled {r}-{i} " + "x" * 120),
                attributes=[
                    KeyValue(key="event_type", value=AnyValue(string_value="request_in")),
                    KeyValue(key="seq", value=AnyValue(int_value=r * BATCH + i)),
                ],
            )
            for i in range(BATCH)
        ]
        request = ExportLogsServiceRequest(
            resource_logs=[
                ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=records)])
            ]
        )
        out.append(request.SerializeToString())
    return out


def start(
    exe: str, config: str, name: str, work: Path, env: dict[str, str]
) -> tuple[servers.ManagedProcess, int]:
    health = servers.free_port()
    metrics = servers.free_port()
    process = servers.ManagedProcess(
        name,
        [exe, f"--config={ROOT / 'collector' / config}"],
        ready=lambda: servers.http_ok(f"http://127.0.0.1:{health}/"),
        log_path=work / f"{name}.log",
        env={
            "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{health}",
            "OTELCOL_METRICS_HOST": "127.0.0.1",
            "OTELCOL_METRICS_PORT": str(metrics),
            "OTELCOL_OTLP_GRPC_ENDPOINT": env.pop("GRPC", f"127.0.0.1:{servers.free_port()}"),
            "PROMETHEUS_REMOTE_WRITE_ENDPOINT": "http://127.0.0.1:9/api/v1/write",
            **env,
        },
        start_timeout=30,
    ).start()
    return process, metrics


def push(url: str, bodies: list[bytes], last_metrics_port: int, total: int) -> float:
    """Seconds from the first request until the last Collector has exported ``total``
    records in all (its counter is cumulative over rounds)."""
    lock = threading.Lock()
    todo = list(bodies)

    def worker() -> None:
        while True:
            with lock:
                if not todo:
                    return
                body = todo.pop()
            while True:
                req = urllib.request.Request(
                    url, data=body, headers={"Content-Type": "application/x-protobuf"}
                )
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    time.sleep(0.1)

    start_t = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and exported(last_metrics_port) < total:
        time.sleep(0.05)
    return time.perf_counter() - start_t


def run() -> BenchResult:
    exe = binary()
    work = Path(tempfile.mkdtemp(prefix="otel-assist-bench-tiers-"))
    bodies = payloads(REQUESTS)
    per_round = REQUESTS * BATCH
    single_t: list[float] = []
    tiers_t: list[float] = []
    sink = Sink()
    single_http = servers.free_port()
    single, single_metrics = start(
        exe,
        "config.yaml",
        "single",
        work,
        {
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{single_http}",
            "OTELCOL_STORAGE_DIR": str(work / "single-queue"),
            "LOKI_OTLP_ENDPOINT": sink.endpoint,
        },
    )
    gw_grpc = servers.free_port()
    gateway, gateway_metrics = start(
        exe,
        "gateway.yaml",
        "gateway",
        work,
        {
            "GRPC": f"127.0.0.1:{gw_grpc}",
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{servers.free_port()}",
            "LOKI_OTLP_ENDPOINT": sink.endpoint,
        },
    )
    agent_http = servers.free_port()
    agent, _ = start(
        exe,
        "agent.yaml",
        "agent",
        work,
        {
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{agent_http}",
            "OTELCOL_STORAGE_DIR": str(work / "agent-queue"),
            "OTELCOL_GATEWAY_ENDPOINT": f"dns:///127.0.0.1:{gw_grpc}",
        },
    )
    try:
        for round_no in range(ROUNDS):
            for name, port, metrics, times in (
                ("single-tier", single_http, single_metrics, single_t),
                ("agent -> gateway", agent_http, gateway_metrics, tiers_t),
            ):
                seconds = push(
                    f"http://127.0.0.1:{port}/v1/logs",
                    bodies,
                    metrics,
                    per_round * (round_no + 1),
                )
                times.append(seconds)
                print(
                    f"  round {round_no + 1}: {name} {per_round / seconds:,.0f} records/s",
                    flush=True,
                )
        expected = 2 * per_round * ROUNDS
        got = sink.records()
        assert got >= expected, f"sink has {got} of {expected} records"
    finally:
        agent.stop()
        gateway.stop()
        single.stop()
        sink.server.shutdown()
    ours = per_round * ROUNDS / sum(tiers_t)
    base = per_round * ROUNDS / sum(single_t)
    print(
        f"  two-tier {ours:,.0f} records/s, single-tier {base:,.0f} records/s "
        f"(records of ~200 bytes, {BATCH} per request, {CONCURRENCY} producers)",
        flush=True,
    )
    return BenchResult(
        name="collector_tiers",
        ratio=ours / base,
        ours=ours,
        baseline=base,
        unit="log records/s (agent -> gateway vs one Collector)",
        target="informational (docs/scaling.md)",
        extra={"batch": BATCH, "requests_per_round": REQUESTS, "rounds": ROUNDS},
    )
