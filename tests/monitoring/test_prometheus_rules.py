"""Prometheus config and alert rules, checked and unit-tested with the real promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.helpers import (
    MONITORING,
    RULE_TESTS_DIR,
    alerting_rules,
    contract_metric_names,
    promql_metric_names,
    recording_rules,
    rule_files,
    rule_test_files,
)

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# Metrics that are not the services' own (docs/telemetry-contract.md lists those).
EXTERNAL_METRICS = {
    "target_info",  # one per process, from the Collector's remote write
    "up",  # Prometheus' scrape health
    "pg_up",  # postgres_exporter
    "redis_up",  # redis_exporter
    "otelcol_exporter_queue_size",  # the Collector's own telemetry
    "otelcol_exporter_queue_capacity",
    "ALERTS",
}
# `dashboard`: the Grafana path the Telegram message links to (tests/test_alert_links.py).
REQUIRED_ANNOTATIONS = {"summary", "description", "runbook", "dashboard"}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd)


def test_promtool_check_config() -> None:
    out = promtool("check", "config", str(MONITORING / "prometheus" / "prometheus.yml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rule_files())} rule files found" in out.stdout


def test_promtool_check_rules() -> None:
    out = promtool("check", "rules", *map(str, rule_files()))
    assert out.returncode == 0, out.stdout + out.stderr
    total = sum(int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", out.stdout))
    assert total == len(alerting_rules()) + len(recording_rules())


def test_promtool_test_rules() -> None:
    out = promtool("test", "rules", *[p.name for p in rule_test_files()], cwd=RULE_TESTS_DIR)
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS") == len(rule_test_files())


def test_rule_test_files_cover_all_rule_files() -> None:
    covered = set()
    for path in rule_test_files():
        doc = yaml.safe_load(path.read_text())
        covered |= {(RULE_TESTS_DIR / f).resolve() for f in doc["rule_files"]}
    assert covered == {p.resolve() for p in rule_files()}


def _alert_cases() -> dict[str, dict[str, list[dict[str, Any]]]]:
    cases: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for path in rule_test_files():
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                kind = "firing" if case.get("exp_alerts") else "quiet"
                cases.setdefault(case["alertname"], {"firing": [], "quiet": []})[kind].append(case)
    return cases


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: r["alert"])
def test_every_alert_has_a_firing_and_a_quiet_unit_test(rule: dict[str, Any]) -> None:
    cases = _alert_cases().get(rule["alert"])
    assert cases, f"{rule['alert']} has no promtool test"
    assert cases["quiet"], f"{rule['alert']} has no case where it must not fire"
    assert cases["firing"], f"{rule['alert']} has no case where it fires"
    for case in cases["firing"]:
        for alert in case["exp_alerts"]:
            labels = alert["exp_labels"]
            assert labels["alertname"] == rule["alert"]
            assert labels["severity"] == rule["labels"]["severity"]
            assert labels["service"] == labels["job"], "service must be the job label"
            assert set(alert["exp_annotations"]) == REQUIRED_ANNOTATIONS


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: r["alert"])
def test_every_alert_is_complete(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["labels"]["service"] == "{{ $labels.job }}"
    assert set(rule["annotations"]) >= REQUIRED_ANNOTATIONS
    assert rule["annotations"]["runbook"].startswith("Check first:")
    assert "for" in rule
    # Every alert keeps the job label, so `service` is never empty.
    expr = rule["expr"]
    for agg in re.findall(r"\b(?:sum|max|min|avg|count) by \(([^)]*)\)", expr):
        assert "job" in [a.strip() for a in agg.split(",")], f"{rule['alert']}: by ({agg})"


def test_alert_names_are_unique() -> None:
    names = [r["alert"] for r in alerting_rules()]
    assert len(names) == len(set(names))


def test_the_issue_alerts_exist() -> None:
    names = {r["alert"] for r in alerting_rules()}
    assert {
        "HighErrorLogRate",
        "HighHttp5xxRate",
        "ServiceDown",
        "CronJobFailures",
        "QueueBacklog",
        "LLMApiErrors",
        "PostgresDown",
        "RedisDown",
        "CronJobMissed",
        "CronJobStuck",
        "CronJobTimedOut",
        "CronJobConsecutiveFailures",
        "QueueOldestMessageTooOld",
        "OtelCollectorExportFailing",
        "OtelCollectorQueueNearlyFull",
        "LogRecordsDropped",
        "HistoryEventsDropped",
    } <= names


def test_rules_use_only_contract_metric_names() -> None:
    known = contract_metric_names() | EXTERNAL_METRICS | {r["record"] for r in recording_rules()}
    for rule in alerting_rules() + recording_rules():
        for name in promql_metric_names(rule["expr"]):
            if name.startswith("re:"):
                assert name.startswith("re:otelcol_exporter_"), name
                continue
            assert name in known, f"{rule.get('alert') or rule.get('record')}: unknown {name}"
