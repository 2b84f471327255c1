"""Every LogQL query the project ships, proven three ways (issue 11):

1. Grafana's own LogQL grammar (``@grafana/lezer-logql``, run with Node) parses it;
2. Loki's semantic rules hold (a selector matcher that is not empty-compatible; only Loki's
   level values; fatal counted with errors) — ``tests/loki/queries.py``;
3. run against the Loki stand-in after a workload through the real Collector, it returns data.

Dashboard queries are checked with every variable at its default, then each variable at
each of its concrete values. The admin's queries (Logs page, Grafana links, timeline) are
checked for every filter combination they can build.

The table of queries and what each returned is written to test-artifacts/logql-queries.txt.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from rest_service.loki import LEVELS, LogFilter
from tests.collector.conftest import Stack
from tests.loki import queries
from tests.polling import poll

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SERVICES = ("assistant_service", "telegram_bot_service")
CID = "cid-logql-check-1"
USER_ID = 42
OTHER_SERVICE = "cron_service"


def run_workload(
    stack: Stack, service: str, cid: str, user: int, events: list[str], verb: str
) -> None:
    """One process logging every (event_type, level) pair through otel_assist -> Collector."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.loki.log_workload",
            "--service",
            service,
            "--events",
            ",".join(events),
            "--correlation-id",
            cid,
            "--user-id",
            str(user),
            "--verb",
            verb,
        ],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "OTEL_EXPORTER_OTLP_ENDPOINT": stack.collector.otlp_endpoint,
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_ASSIST_ENVIRONMENT": "test",
            "OTEL_ASSIST_LOG_LEVEL": "DEBUG",
            "OTEL_ASSIST_LOG_EXPORT_INTERVAL": "200",
            "OTEL_RESOURCE_ATTRIBUTES": "",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def query_range(stack: Stack, expr: str) -> tuple[int, Any]:
    now = time.time_ns()
    params = {
        "query": expr,
        "start": str(now - 15 * 60 * 10**9),
        "end": str(now),
        "step": "15s",
        "limit": "1000",
    }
    url = f"{stack.loki.url}/loki/api/v1/query_range?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def summary(body: dict[str, Any]) -> tuple[int, str]:
    """(how much came back, a short description): lines for log queries, the sum of the
    last points (lines counted in the last minute) for metric queries."""
    data = body["data"]
    if data["resultType"] == "streams":
        lines = sum(len(s["values"]) for s in data["result"])
        return lines, f"{lines} lines in {len(data['result'])} streams"
    total = sum(float(s["values"][-1][1]) for s in data["result"] if s["values"])
    return round(total), f"{len(data['result'])} series, last points sum {total:g}"


def admin_queries() -> list[queries.ShippedQuery]:
    """Every LogQL query shape the admin builds (``LogFilter``: the Logs page, its Grafana
    Explore link, the correlation timeline): every level, each other filter on and off."""
    out = []
    for service in (None, SERVICES[0]):
        for level in (None, *LEVELS):
            for cid in (None, CID):
                for user in (None, str(USER_ID)):
                    for text in (None, "processed"):
                        f = LogFilter.parse(
                            service=service,
                            level=level,
                            correlation_id=cid,
                            user_id=user,
                            text=text,
                        )
                        variables = tuple(
                            (k, str(v))
                            for k, v in (
                                ("service", service),
                                ("level", level),
                                ("correlation_id", cid),
                                ("user_id", user),
                                ("text", text),
                            )
                            if v is not None
                        )
                        out.append(queries.ShippedQuery("admin: LogFilter", variables, f.logql()))
    return out


def test_every_logql_query_parses_obeys_loki_and_returns_data(stack: Stack) -> None:
    found = queries.dashboard_logql()
    assert found, "no Loki targets in the generated dashboards"
    logs_vars = {v["name"]: v for v in found[0][3]}
    event_types = [o["value"] for o in logs_vars["event_type"]["options"]]
    levels = [o["value"] for o in logs_vars["level"]["options"]]
    assert set(levels) == {"debug", "info", "warn", "error", "fatal"}, levels

    for service in SERVICES:
        run_workload(stack, service, CID, USER_ID, event_types, "processed")
    # Lines the concrete filters must leave out: another request, user and text.
    run_workload(stack, OTHER_SERVICE, "cid-other-2", 7, event_types[:3], "skipped")
    expected = len(SERVICES) * len(event_types) * 5 + 3 * 5
    poll(lambda: len(stack.loki.entries()) >= expected, 60, f"{expected} lines at the stand-in")
    assert len(stack.loki.entries()) == expected  # none lost, none duplicated

    def label_values(name: str) -> list[str]:
        url = f"{stack.loki.url}/loki/api/v1/label/{name}/values"
        with urllib.request.urlopen(url, timeout=5) as resp:
            values: list[str] = json.loads(resp.read())["data"]
        return values

    concrete = {
        # Query variables take what Grafana's label_values() would offer.
        "service": label_values("service_name"),
        "environment": label_values("deployment_environment_name"),
        "level": levels,
        "event_type": event_types,
        "correlation_id": [CID],
        "user_id": [str(USER_ID)],
        "search": ["processed"],
    }
    assert concrete["service"] == sorted((*SERVICES, OTHER_SERVICE))
    assert concrete["environment"] == ["test"]

    shipped: list[queries.ShippedQuery] = []
    for board, panel, target, variables in found:
        for values, expr in queries.expansions(target["expr"], variables, concrete):
            shipped.append(queries.ShippedQuery(f"{board} / {panel}", values, expr))
    shipped += admin_queries()

    grammar = queries.lezer_parse([q.expr for q in shipped])
    failures: list[str] = []
    report: list[str] = []
    returned: list[tuple[queries.ShippedQuery, int]] = []
    for q, parsed in zip(shipped, grammar, strict=True):
        assert parsed["query"] == q.expr
        where = f"{q.origin} {dict(q.variables)}"
        if parsed["errors"]:
            failures.append(f"{where}: Grafana's grammar: syntax error near {parsed['errors']}")
            continue
        problems = queries.semantic_problems(q.expr)
        if problems:
            failures.append(f"{where}: {problems} in {q.expr}")
            continue
        status, body = query_range(stack, q.expr)
        if status != 200:
            failures.append(f"{where}: stand-in answered {status}: {body}")
            continue
        count, text = summary(body)
        returned.append((q, count))
        report.append(f"{q.origin}\t{dict(q.variables)}\t{q.expr}\t{text}")
        if count == 0:
            failures.append(f"{where}: no data for {q.expr}")
    # The filters filter: each concrete value returns less than the defaults did.
    counts = {(q.origin, q.variables): c for q, c in returned}
    for (origin, variables), count in counts.items():
        if origin.startswith("admin") or variables[0][0] in ("*", "environment"):
            continue
        default = counts[(origin, (("*", "defaults"),))]
        if count >= default:
            failures.append(f"{origin} {dict(variables)}: {count} is not fewer than {default}")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "logql-queries.txt").write_text("\n".join(report) + "\n")
    print(f"{len(shipped)} LogQL queries checked, {len(report)} returned 200")
    assert not failures, "\n".join(failures[:40])
