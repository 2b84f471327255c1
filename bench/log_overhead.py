"""log_overhead: CPU microseconds per log call, otel_assist / plain structlog JSON.

Each variant (see ``bench/log_variants.py``) runs in its own process, so structlog's global
configuration cannot leak between them, in interleaved rounds; each figure is the median
over rounds. CPU time of the whole process is measured, so the background thread that turns
queued events into OpenTelemetry records is counted too, not hidden.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench import BenchResult

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CALLS = int(os.environ.get("BENCH_LOG_CALLS", "50000"))
VARIANTS = ("structlog", "ours", "stdlib_otel")


def one(variant: str) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "bench.log_variants", variant, str(CALLS)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def run() -> BenchResult:
    results: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for round_no in range(ROUNDS):
        for variant in VARIANTS:
            results[variant].append(one(variant))
        print(
            f"round {round_no + 1}: " + " ".join(f"{v}={results[v][-1]:.2f}us" for v in VARIANTS),
            flush=True,
        )
    med = {v: statistics.median(values) for v, values in results.items()}
    stdlib_ratio = med["stdlib_otel"] / med["structlog"]
    print(f"structlog -> stdlib -> OTel LoggingHandler: ratio={stdlib_ratio:.3f}")
    return BenchResult(
        name="log_overhead",
        ratio=med["ours"] / med["structlog"],
        ours=med["ours"],
        baseline=med["structlog"],
        unit="us/call",
        target="<= 2.0",
        extra={"stdlib_otel_ratio": stdlib_ratio, "rounds": results},
    )
