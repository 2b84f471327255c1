"""collector_tiers: log records/s through the two-tier Collector (agent -> gateway) against the
single-tier Collector (collector/config.yaml), same machine, same producer, same sink.

The real otelcol-assist binary (collector/build.sh) runs each pipeline; a producer pushes
pre-serialised OTLP/HTTP requests of BATCH records from CONCURRENCY threads, and the rate is
records acknowledged by the sink / wall time until the sink holds all of them. The sink
keeps raw requests (tests/otlp_receiver.py) and decodes them only at the end, so it costs the
machine little. The two sides alternate in ROUNDS rounds (this shared VM's speed drifts).

What it tells docs/scaling.md: how many log records per second one Collector process (and
one agent + one gateway) moves on one core-pair here, i.e. when a host needs more than one.
Ratio: two-tier / single-tier (below 1: the extra hop's cost; the gain is elsewhere:
durability at the agent and gateways that scale out).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

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
from tests.otlp_receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parent.parent
BATCH = 1000
REQUESTS = int(os.environ.get("BENCH_TIERS_REQUESTS", "60"))  # per round
CONCURRENCY = 4
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


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
) -> servers.ManagedProcess:
    health = servers.free_port()
    return servers.ManagedProcess(
        name,
        [exe, f"--config={ROOT / 'collector' / config}"],
        ready=lambda: servers.http_ok(f"http://127.0.0.1:{health}/"),
        log_path=work / f"{name}.log",
        env={
            "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{health}",
            "OTELCOL_METRICS_HOST": "127.0.0.1",
            "OTELCOL_METRICS_PORT": str(servers.free_port()),
            "OTELCOL_OTLP_GRPC_ENDPOINT": env.pop("GRPC", f"127.0.0.1:{servers.free_port()}"),
            "PROMETHEUS_REMOTE_WRITE_ENDPOINT": "http://127.0.0.1:9/api/v1/write",
            **env,
        },
        start_timeout=30,
    ).start()


def push(url: str, bodies: list[bytes], sink: OTLPReceiver, total: int) -> float:
    """Seconds from the first request until the sink has received every request."""
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

    before = len(sink.paths)
    start_t = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 120
    # the receiver counts requests; each exported request holds up to max_size records, so
    # wait on the decoded record count instead, taken without the decode cost in the loop
    while time.monotonic() < deadline:
        with sink.lock:
            arrived = len(sink.paths) - before
        if arrived and _records(sink) >= total:
            break
        time.sleep(0.2)
    return time.perf_counter() - start_t


def _records(sink: OTLPReceiver) -> int:
    return len(sink.records())


def run() -> BenchResult:
    exe = binary()
    work = Path(tempfile.mkdtemp(prefix="otel-assist-bench-tiers-"))
    bodies = payloads(REQUESTS)
    per_round = REQUESTS * BATCH
    single_t: list[float] = []
    tiers_t: list[float] = []
    with OTLPReceiver() as sink:
        single_http = servers.free_port()
        single = start(
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
        gateway = start(
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
        agent = start(
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
            expected = 0
            for round_no in range(ROUNDS):
                for name, port, times in (
                    ("single-tier", single_http, single_t),
                    ("agent -> gateway", agent_http, tiers_t),
                ):
                    expected += per_round
                    seconds = push(f"http://127.0.0.1:{port}/v1/logs", bodies, sink, expected)
                    times.append(seconds)
                    print(
                        f"  round {round_no + 1}: {name} {per_round / seconds:,.0f} records/s",
                        flush=True,
                    )
            got = _records(sink)
            assert got >= expected, f"sink has {got} of {expected} records"
        finally:
            agent.stop()
            gateway.stop()
            single.stop()
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
