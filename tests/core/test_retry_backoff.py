"""Retry jitter comes from the library's own generator (otel_assist/retry_backoff.py): the
application's global random state is never moved, every forked worker draws its own
jitter, and the delays stay within their documented bounds."""

from __future__ import annotations

import ast
import os
import random
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from otel_assist import retry_backoff
from otel_assist.retry_backoff import exponential_delay, jittered, spread

ROOT = Path(__file__).resolve().parents[2]
DELAYS = st.floats(min_value=0, max_value=1e6, allow_nan=False)


def test_the_global_random_state_is_left_alone() -> None:
    random.seed(1234)
    expected = [random.random() for _ in range(3)]
    random.seed(1234)
    for _ in range(100):
        jittered(1.0)
        exponential_delay(5, 0.5, 30.0)
        spread(2.0)
    assert [random.random() for _ in range(3)] == expected


@given(delay=DELAYS)
def test_jittered_stays_between_half_and_all(delay: float) -> None:
    assert delay / 2 <= jittered(delay) <= delay


@given(
    failures=st.integers(min_value=-5, max_value=10**6),
    initial=st.floats(min_value=0.001, max_value=60, allow_nan=False),
    cap=st.floats(min_value=0.001, max_value=3600, allow_nan=False),
)
def test_exponential_delay_doubles_up_to_the_cap(failures: int, initial: float, cap: float) -> None:
    full = min(cap, initial * 2 ** min(max(failures, 1) - 1, 30))
    assert full / 2 <= exponential_delay(failures, initial, cap) <= full <= cap


@given(value=DELAYS, fraction=st.floats(min_value=0, max_value=1, allow_nan=False))
def test_spread_stays_within_its_fraction(value: float, fraction: float) -> None:
    result = spread(value, fraction)
    assert value * (1 - fraction) - 1e-9 <= result <= value * (1 + fraction) + 1e-9


def test_a_forked_child_draws_its_own_jitter() -> None:
    """Without the reseed at fork a child repeats its parent's next draws, and workers
    forked from one parent retry in step."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its draws and leave without running anything else
        try:
            os.write(write_end, repr([jittered(1.0) for _ in range(8)]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child = ast.literal_eval(pipe.read())
    os.waitpid(pid, 0)
    parent = [jittered(1.0) for _ in range(8)]
    assert child != parent


def _global_random_uses(path: Path) -> list[str]:
    """``random.<function>(...)`` calls and ``from random import`` in one file."""
    hits: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "random":
            hits.append(f"line {node.lineno}: from random import")
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
            and node.attr != "Random"
        ):
            hits.append(f"line {node.lineno}: random.{node.attr}")
    return hits


def test_no_library_module_draws_from_the_global_generator() -> None:
    allowed = Path(retry_backoff.__file__).resolve()
    offenders = {
        str(path.relative_to(ROOT)): hits
        for path in sorted((ROOT / "otel_assist").rglob("*.py"))
        if path.resolve() != allowed and (hits := _global_random_uses(path))
    }
    assert offenders == {}, f"draw jitter through otel_assist.retry_backoff: {offenders}"


def test_the_scan_finds_a_global_draw(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import random\nx = random.uniform(0, 1)\nrng = random.Random()\n")
    assert _global_random_uses(sample) == ["line 2: random.uniform"]
