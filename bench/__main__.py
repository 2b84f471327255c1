"""``python -m bench [NAME ...]``: run benchmarks, print each one's contract line last.

With no NAME every benchmark runs and the results are written to ``bench/results.json``.
A benchmark is a module ``bench/<name>.py`` with ``run() -> BenchResult``.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from bench import BenchResult

ALL = [
    "http_overhead",
    "http_logging",
    "log_overhead",
    "log_export",
    "queue_overhead",
    "job_overhead",
    "ingest_throughput",
    "stats_scaling",
    "event_cost",
    "stats_cardinality",
    "partitioned_history",
    "collector_tiers",
]


def run_one(name: str) -> BenchResult:
    module = importlib.import_module(f"bench.{name}")
    result: BenchResult = module.run()
    return result


def main(argv: list[str]) -> int:
    names = argv or [n for n in ALL if (Path(__file__).parent / f"{n}.py").exists()]
    unknown = [n for n in names if not (Path(__file__).parent / f"{n}.py").exists()]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(ALL)}")
        return 2
    results = []
    for name in names:
        result = run_one(name)
        results.append(result.to_json())
        print(result.line(), flush=True)
    if not argv:
        out = Path(__file__).parent / "results.json"
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
