"""Shared paths and parsers for the monitoring tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
RULES_DIR = MONITORING / "prometheus" / "rules"
RULE_TESTS_DIR = MONITORING / "prometheus" / "tests"
ALERTMANAGER_DIR = MONITORING / "alertmanager"
GRAFANA_DIR = MONITORING / "grafana"
CONTRACT = ROOT / "docs" / "telemetry-contract.md"


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*.yml"))


def alerting_rules() -> list[dict[str, Any]]:
    rules = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(r for r in group["rules"] if "alert" in r)
    return rules


def recording_rules() -> list[dict[str, Any]]:
    rules = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(r for r in group["rules"] if "record" in r)
    return rules


def contract_metric_names() -> set[str]:
    """Prometheus names from the metrics table of docs/telemetry-contract.md."""
    names = set()
    for line in CONTRACT.read_text().splitlines():
        m = re.match(r"^\| `([a-z_]+)` \| (counter|histogram|gauge)", line)
        if m:
            name, kind = m.groups()
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            else:
                names.add(name)
    return names


_PROMQL_WORDS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "rate",
    "increase",
    "irate",
    "histogram_quantile",
    "last_over_time",
    "max_over_time",
    "offset",
    "topk",
    "bottomk",
    "vector",
    "time",
    "timestamp",
    "le",
    "bool",
    "abs",
    "clamp_min",
    "label_values",
    "absent",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (good enough for our own queries)."""
    stripped = re.sub(r"\{[^}]*\}", "{}", expr)  # drop matchers
    stripped = re.sub(r'"[^"]*"', '""', stripped)
    stripped = re.sub(r"\[[^\]]*\]", "[]", stripped)
    stripped = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1()", stripped
    )
    names = set()
    for m in re.finditer(r"(?<![\w:$])([a-zA-Z_:][\w:]*)\s*(?=[\[{)\s]|$)", stripped):
        word = m.group(1)
        if word not in _PROMQL_WORDS and not word.startswith("__"):
            names.add(word)
    regex_names = re.findall(r'__name__=~"([^"]+)"', expr)
    for pattern in regex_names:
        names.add(f"re:{pattern}")
    return names
