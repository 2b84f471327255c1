"""http_logging: requests/s of a hello-world service that logs, with otel-assist / without.

What a service run as the README shows (``uvicorn app:app``) pays: uvicorn with uvloop and
httptools, its default access log ON in both variants, and two application log lines per
request (one structlog, one stdlib; ``bench/http_logging_app.py``). Plain writes structlog
JSON, a stdlib text line and uvicorn's access line to stdout; ours writes the same three
lines as JSON and exports each as an OpenTelemetry log record over OTLP/HTTP to the
project's own Collector (``bench/nop-collector.yaml``: OTLP receiver -> nop exporter).

The server is pinned to CPU 0; ``wrk -t1 -c32`` and the Collector share CPU 1. Both
servers' stdout goes to a file (the same cost for both), whose line count is checked
against the requests served. Interleaved rounds; each variant's figure is the median.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import BenchResult
from bench._collector import NopCollector, pin
from tests.polling import poll
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
VARIANTS = ("plain", "ours")
LINES_PER_REQUEST = 3  # structlog line, stdlib line, uvicorn's access line
SERVER_CPU, LOAD_CPU = 0, 1


def start(variant: str, port: int, otlp: str, stdout_path: Path) -> subprocess.Popen[bytes]:
    """uvicorn with the README's command line plus production loop/parser: access log on."""
    env = {
        **os.environ,
        "BENCH_VARIANT": variant,
        "PYTHONPATH": str(ROOT),
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
        "OTEL_METRICS_EXPORTER": "prometheus",  # metrics on /metrics, not pushed
        "OTEL_ASSIST_LOG_FORMAT": "json",
    }
    argv = [
        *pin(SERVER_CPU), sys.executable, "-m", "uvicorn", "bench.http_logging_app:app",
        "--port", str(port), "--loop", "uvloop", "--http", "httptools",
    ]  # fmt: skip
    with stdout_path.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    poll(lambda: _ready(port), 30, f"{variant} server")
    return proc


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/hello", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def load(port: int, seconds: int = SECONDS) -> tuple[float, int]:
    """wrk's requests/s and request count; raises on any failed request."""
    out = subprocess.run(
        [*pin(LOAD_CPU), "wrk", "-t1", "-c32", f"-d{seconds}s", f"http://127.0.0.1:{port}/hello"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if not rate or not count:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", out)
    if errors:
        raise RuntimeError(f"failed requests:\n{out}")
    return float(rate.group(1)), int(count.group(1))


def dropped(port: int) -> int:
    """Records ours dropped so far (``otel_assist_log_records_dropped_total``, all reasons):
    a full queue drops the newest records rather than block, and a variant that drops is
    doing less work, so the count is printed beside its rate."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return int(
        sum(
            float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if line.startswith("otel_assist_log_records_dropped")
        )
    )


def _lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def run() -> BenchResult:
    if not shutil.which("wrk"):
        raise SystemExit("http_logging needs wrk (Debian package 'wrk'; make system-deps)")
    work = Path(tempfile.mkdtemp(prefix="otel-assist-bench-http-logging-"))
    rps: dict[str, list[float]] = {v: [] for v in VARIANTS}
    served = dict.fromkeys(VARIANTS, 0)
    lines = dict.fromkeys(VARIANTS, 0)
    lost = 0
    with NopCollector(cpu=LOAD_CPU) as collector:
        for round_no in range(ROUNDS):
            order = VARIANTS if round_no % 2 == 0 else tuple(reversed(VARIANTS))
            for variant in order:
                port = free_port()
                stdout_path = work / f"{variant}-{round_no}.out"
                proc = start(variant, port, collector.endpoint, stdout_path)
                try:
                    _, warm = load(port, 1)  # warm-up: imports, caches, first connections
                    rate, count = load(port)
                    rps[variant].append(rate)
                    served[variant] += warm + count
                    if variant == "ours":
                        lost += dropped(port)
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
                lines[variant] += _lines(stdout_path)
                print(f"round {round_no + 1} {variant}: {rate:.0f} req/s", flush=True)
                time.sleep(0.5)
        accepted = collector.accepted()
    for variant in VARIANTS:
        # wrk counts completed responses; the server may log a few more (requests in
        # flight when wrk stopped, the readiness probe), never fewer.
        if lines[variant] < LINES_PER_REQUEST * served[variant]:
            raise RuntimeError(
                f"{variant}: {lines[variant]} stdout lines for {served[variant]} requests"
            )
    # Three records per request, each delivered (the server flushes at shutdown) or
    # counted as dropped.
    if accepted + lost < LINES_PER_REQUEST * served["ours"]:
        raise RuntimeError(
            f"Collector accepted {accepted} records and {lost} were counted as dropped, "
            f"for {served['ours']} requests"
        )
    med = {v: statistics.median(values) for v, values in rps.items()}
    print(
        f"stdout lines: plain {lines['plain']}, ours {lines['ours']}; "
        f"requests served: plain {served['plain']}, ours {served['ours']}"
    )
    print(f"log records accepted by the Collector (ours): {accepted}; dropped (counted): {lost}")
    return BenchResult(
        name="http_logging",
        ratio=med["ours"] / med["plain"],
        ours=med["ours"],
        baseline=med["plain"],
        unit="req/s",
        target=">= 0.90",
        extra={
            "rounds": rps,
            "collector_accepted": accepted,
            "records_dropped": lost,
            "stdout_lines": lines,
        },
    )
