"""rss: resident memory of an instrumented worker after 100,000 requests / plain.

The service of ``http_logging`` (``bench/http_logging_app.py``: uvicorn with its access
log on, a structlog and a stdlib line per request; ours exports every line over OTLP to
the project's Collector with a nop pipeline), one process per variant, pinned to CPU 0
with ``wrk`` and the Collector on CPU 1. wrk runs in one-second bursts until LIMIT
responses are reached, twice: RSS (``VmRSS``) is read after 50,000 and after 100,000
requests (the exact counts, a burst past each mark, are printed). A Lua script stopping
wrk after N responses (``wrk.thread:stop()``) left wrk hanging here.

Targets (issue 13): ours <= 1.2x plain at 100,000 requests, and flat from 50,000 to
100,000 (growth at most FLAT_PCT % of the 50,000 figure; a leak of even a few bytes per
request or a queue that never drains would show here: 50,000 requests x 3 records).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench import BenchResult
from bench._collector import NopCollector, pin
from bench.http_logging import LOAD_CPU, start
from tests.servers import free_port

LIMIT = int(os.environ.get("BENCH_RSS_REQUESTS", "50000"))  # per step; two steps
FLAT_PCT = 2.0


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    if not match:
        raise RuntimeError(f"no VmRSS for {pid}")
    return int(match.group(1))


def drive(port: int, count: int) -> int:
    """At least ``count`` responses, in one-second wrk bursts; returns how many."""
    served = 0
    while served < count:
        out = subprocess.run(
            [*pin(LOAD_CPU), "wrk", "-t1", "-c32", "-d1s", f"http://127.0.0.1:{port}/hello"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        burst = re.search(r"(\d+) requests in", out)
        if not burst or re.search(r"Non-2xx|Socket errors", out):
            raise RuntimeError(f"unexpected wrk output:\n{out}")
        served += int(burst.group(1))
    return served


def measure(variant: str, endpoint: str, work: Path) -> tuple[int, int, int, int]:
    """RSS in KiB after LIMIT requests and after 2*LIMIT, and the requests served then."""
    port = free_port()
    proc = start(variant, port, endpoint, work / f"{variant}.out")
    try:
        at_first = drive(port, LIMIT)
        time.sleep(1.5)  # one export interval: what is queued now is in flight, not held
        first = rss_kib(proc.pid)
        served = at_first + drive(port, 2 * LIMIT - at_first)
        time.sleep(1.5)
        second = rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(
        f"{variant}: RSS {first / 1024:.1f} MiB after {at_first:,} requests, "
        f"{second / 1024:.1f} MiB after {served:,}",
        flush=True,
    )
    return first, second, at_first, served


def run() -> BenchResult:
    if not shutil.which("wrk"):
        raise SystemExit("rss needs wrk (Debian package 'wrk'; make system-deps)")
    work = Path(tempfile.mkdtemp(prefix="otel-assist-bench-rss-"))
    with NopCollector(cpu=LOAD_CPU) as collector:
        plain = measure("plain", collector.endpoint, work)
        ours = measure("ours", collector.endpoint, work)
        accepted = collector.accepted()
    growth = {
        name: (second - first) / first * 100
        for name, (first, second, _, _) in (("plain", plain), ("ours", ours))
    }
    flat = growth["ours"] <= FLAT_PCT
    print(
        f"growth 50k -> 100k: ours {growth['ours']:+.2f} %, plain {growth['plain']:+.2f} % "
        f"(flat: <= {FLAT_PCT} %): {'flat' if flat else 'NOT flat'}"
    )
    print(f"log records accepted by the Collector (ours): {accepted:,}")
    return BenchResult(
        name="rss",
        ratio=ours[1] / plain[1],
        ours=ours[1] / 1024,
        baseline=plain[1] / 1024,
        unit="MiB RSS after 100k requests",
        target=f"<= 1.2 (and ours flat 50k -> 100k: growth <= {FLAT_PCT} %)",
        extra={
            "ours_50k_mib": ours[0] / 1024,
            "plain_50k_mib": plain[0] / 1024,
            "ours_growth_pct": growth["ours"],
            "plain_growth_pct": growth["plain"],
            "ours_requests": ours[3],
            "plain_requests": plain[3],
            "collector_accepted": accepted,
        },
        also_met=flat,
    )
