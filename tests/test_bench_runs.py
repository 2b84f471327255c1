"""bench/runs.jsonl is the record of every benchmark run bench/README.md quotes: each line
must be strict JSON (no NaN/Infinity, which only Python's reader accepts) with the fields
the README's tables are read from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import _strict

RUNS = Path(__file__).resolve().parent.parent / "bench" / "runs.jsonl"


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def test_every_recorded_run_is_strict_json_with_its_figures() -> None:
    lines = RUNS.read_text().splitlines()
    assert lines
    for number, line in enumerate(lines, 1):
        run = json.loads(line, parse_constant=_refuse)
        assert {"name", "commit", "time_utc", "load_before", "passed"} <= set(run), number
        assert ("ratio" in run and "target" in run) or "error" in run, number


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_figures_are_written_as_null(bad: float) -> None:
    entry = {"ratio": bad, "extra": {"stock_ratio": bad, "ok": 1.5}, "load": [bad, 2.0]}
    text = json.dumps(_strict(entry), allow_nan=False)
    assert json.loads(text) == {
        "ratio": None,
        "extra": {"stock_ratio": None, "ok": 1.5},
        "load": [None, 2.0],
    }
