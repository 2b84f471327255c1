"""``python -m bench [NAME ...]``: run benchmarks, print each one's contract line last.

With no NAME every benchmark runs. Either way each result is recorded twice:

* ``bench/results.json``: the latest result per benchmark (a named run replaces only its
  own entries), so it always holds one current figure for each;
* ``bench/runs.jsonl``: one line appended per benchmark run, never rewritten, so every
  run stays on record (bench/README.md links it; a JSON line per run merges cleanly
  between branches and cannot be mistyped, unlike a hand-kept table).

Each entry carries the ratio, the target and whether it was met, the machine's load
average before and after (this is a shared 2-core machine: the load says how much to
trust a figure), the UTC time and the git commit (``+dirty`` with uncommitted changes).
A benchmark that raises is recorded with its error and the others still run.

A benchmark is a module ``bench/<name>.py`` with ``run() -> BenchResult``.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import subprocess
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import BenchResult

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
RUNS = HERE / "runs.jsonl"
ALL = [
    "http_overhead",
    "http_logging",
    "log_overhead",
    "rss",
    "log_export",
    "queue_overhead",
    "queue_floor",
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


def met(ratio: float, target: str) -> bool | None:
    """Whether ``ratio`` meets a target written ``>= X``, ``<= X``, ``< X`` or ``> X``;
    None for an informational target."""
    match = re.match(r"\s*(>=|<=|<|>)\s*([\d.]+)", target)
    if not match:
        return None
    op, bound = match.group(1), float(match.group(2))
    return {
        ">=": ratio >= bound,
        "<=": ratio <= bound,
        "<": ratio < bound,
        ">": ratio > bound,
    }[op]


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=HERE, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=HERE, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def record(name: str, commit: str) -> dict[str, Any]:
    """Run one benchmark and describe the run (result or error)."""
    entry: dict[str, Any] = {
        "name": name,
        "time_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "load_before": _load(),
    }
    try:
        result = run_one(name)
    except Exception as exc:
        traceback.print_exc()
        entry.update(error=f"{type(exc).__name__}: {exc}"[:2000], passed=False)
    else:
        print(result.line(), flush=True)
        passed = met(result.ratio, result.target)
        if result.also_met is False:
            passed = False
        entry.update(result.to_json(), passed=passed)
    entry["load_after"] = _load()
    verdict = {True: "PASS", False: "FAIL", None: "info"}[entry["passed"]]
    print(
        f"{name}: {verdict} (target {entry.get('target', '-')}); load average "
        f"{entry['load_before'][0]} before, {entry['load_after'][0]} after",
        flush=True,
    )
    return entry


def _strict(value: Any) -> Any:
    """JSON has no NaN or infinity (a bench reports NaN for a variant it could not run):
    written as null, so every line parses with any JSON reader, not only Python's."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def save(entries: list[dict[str, Any]]) -> None:
    try:
        latest = {e["name"]: e for e in json.loads(RESULTS.read_text())}
    except (OSError, ValueError, TypeError, KeyError):
        latest = {}
    for entry in entries:
        latest[entry["name"]] = entry
    ordered = [latest[n] for n in ALL if n in latest]
    ordered += [e for n, e in latest.items() if n not in ALL]
    RESULTS.write_text(json.dumps(_strict(ordered), indent=2, allow_nan=False) + "\n")
    with RUNS.open("a") as runs:
        for entry in entries:
            slim = {k: v for k, v in entry.items() if k != "extra"}
            extra = entry.get("extra") or {}
            slim["extra"] = {k: v for k, v in extra.items() if isinstance(v, int | float | str)}
            runs.write(json.dumps(_strict(slim), sort_keys=True, allow_nan=False) + "\n")


def main(argv: list[str]) -> int:
    known = [n for n in ALL if (HERE / f"{n}.py").exists()]
    names = argv or known
    unknown = [n for n in names if not (HERE / f"{n}.py").exists()]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(known)}")
        return 2
    if len(names) > 1:
        # Each benchmark in a fresh interpreter: one configures otel_assist, sets
        # environment variables or starts threads that a later one in the same process
        # would inherit (log_overhead after queue_overhead exported nothing: 0 records).
        codes = [
            subprocess.run([sys.executable, "-m", "bench", name], check=False).returncode
            for name in names
        ]
        return max(codes)
    commit = git_commit()
    entries = [record(name, commit) for name in names]
    save(entries)
    print(f"wrote {RESULTS} and appended {len(entries)} run(s) to {RUNS}")
    return 0 if all("error" not in e for e in entries) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
