"""Every LogQL query the project ships, with its Grafana variables expanded, and the checks
each must pass: Grafana's LogQL grammar (``@grafana/lezer-logql`` run with Node) and Loki's
semantic rules (a selector matcher that is not empty-compatible; Loki's level names; errors
counted with fatal).

Used by ``tests/collector/test_logql_queries.py`` (which also runs each query against the
Loki stand-in after a workload through the real Collector) and by the stand-in's own tests.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.loki import logql

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "monitoring" / "grafana" / "dashboards"
LEZER_DIR = ROOT / "tests" / "logql"

#: Loki's detected_level values (docs: "debug, info, warn, error, fatal"; trace/unknown too).
LOKI_LEVELS = frozenset({"trace", "debug", "info", "warn", "error", "fatal", "unknown"})
#: What Grafana puts for these built-ins when it runs a panel (a plausible interval).
BUILTINS = {"__auto": "1m", "__interval": "1m", "__range": "15m", "__rate_interval": "1m"}


@dataclass(frozen=True)
class ShippedQuery:
    """One query as Loki receives it: where it comes from and the variable values used."""

    origin: str  # "<dashboard> / <panel>" or "admin: ..."
    variables: tuple[tuple[str, str], ...]
    expr: str


def dashboard_logql() -> list[tuple[str, str, dict[str, Any], list[dict[str, Any]]]]:
    """(dashboard title, panel title, the panel's target, the dashboard's variables) for every
    Loki target of every generated dashboard."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        variables = board.get("templating", {}).get("list", [])
        for panel in board.get("panels", []):
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("type") == "loki":
                    found.append((board["title"], panel["title"], target, variables))
    return found


def default_value(variable: dict[str, Any]) -> str:
    """What Grafana puts in the query for a variable left at its default."""
    current = variable.get("current") or {}
    value = current.get("value")
    if isinstance(value, list):
        value = value[0] if value else ""
    if value == "$__all":
        return str(variable["allValue"])
    if variable["type"] == "textbox":
        return str(variable.get("query", ""))
    if value is None and variable.get("options"):
        return str(variable["options"][0]["value"])
    return str(value or "")


def expand(expr: str, values: dict[str, str]) -> str:
    """Grafana's interpolation of ``$name`` / ``${name}`` (longest names first, so
    ``$user_id`` is not read as ``$user``)."""
    merged = {**BUILTINS, **values}
    for name in sorted(merged, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", merged[name]).replace("$" + name, merged[name])
    if "$" in re.sub(r"\$(?![A-Za-z_{])", "", expr):
        raise AssertionError(f"unexpanded variable left in {expr!r}")
    return expr


def expansions(
    target_expr: str, variables: list[dict[str, Any]], concrete: dict[str, list[str]]
) -> list[tuple[tuple[tuple[str, str], ...], str]]:
    """The query with every variable at its default, then with each variable in turn at
    each of its concrete values (the others at their defaults)."""
    defaults = {v["name"]: default_value(v) for v in variables}
    used = [v["name"] for v in variables if re.search(rf"\$\{{?{v['name']}\b", target_expr)]
    out = [((("*", "defaults"),), expand(target_expr, defaults))]
    for name in used:
        for value in concrete.get(name, []):
            values = {**defaults, name: value}
            out.append((((name, value),), expand(target_expr, values)))
    return out


# --------------------------------------------------------------------------- grammar


def lezer_parse(queries: list[str]) -> list[dict[str, Any]]:
    """Parse with Grafana's LogQL grammar; installs it from the lockfile (``npm ci``) on a
    fresh machine."""
    if not (LEZER_DIR / "node_modules" / "@grafana" / "lezer-logql").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=LEZER_DIR,
            check=True,
            capture_output=True,
            timeout=300,
        )
    done = subprocess.run(
        ["node", "parse.mjs"],
        cwd=LEZER_DIR,
        input=json.dumps(queries),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


# --------------------------------------------------------------------------- semantics


def _level_values(expr: logql.Expr) -> list[logql.Matcher]:
    node: Any = expr
    while not isinstance(node, logql.LogQuery):
        node = node.inner if isinstance(node, logql.VectorAggregation) else node.query
    return [
        s.matcher
        for s in node.stages
        if isinstance(s, logql.LabelFilter) and s.matcher.name == "detected_level"
    ]


def semantic_problems(query: str) -> list[str]:
    """Loki's rules a grammar cannot see. Empty list = fine."""
    try:
        expr = logql.parse(query)
    except (logql.LogQLError, logql.NotInStandIn) as exc:
        return [str(exc)]
    problems = []
    for m in _level_values(expr):
        if m.op in ("=", "!="):
            names = [m.value]
        elif m.value in (".+", ".*"):
            continue
        else:
            names = m.value.split("|")
        unknown = [n for n in names if n not in LOKI_LEVELS]
        if unknown:
            problems.append(
                f"detected_level {m.op} {m.value!r}: {unknown} are not Loki level values "
                "(Loki has warn, not warning; fatal, not critical)"
            )
        # A set of levels meant as "the errors" (error plus others) must include fatal; a
        # person picking the single level "error" is not counting errors.
        if m.op == "=~" and len(names) > 1 and "error" in names and "fatal" not in names:
            problems.append("errors are counted without fatal (Python's CRITICAL)")
    return problems
