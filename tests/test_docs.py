"""The README is the front door: it must stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

from otel_assist.metrics import markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_two_commands_at_the_top() -> None:
    top = README[:400]
    assert "make demo" in top and "make test" in top


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_metric_table_is_the_catalog() -> None:
    assert markdown_table() in README


def test_every_setting_variable_is_documented() -> None:
    source = (ROOT / "otel_assist" / "settings.py").read_text()
    names = set(re.findall(r'"(OTEL_[A-Z_]+[A-Z])"', source))
    assert names, "no variables found"
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert not missing, f"undocumented: {missing}"
