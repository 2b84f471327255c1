"""Grafana provisioning and generated dashboards: parsed and checked for the invariants."""

from __future__ import annotations

import configparser
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.monitoring.helpers import GRAFANA_DIR, MONITORING, ROOT

DATASOURCE_UIDS = {"prometheus", "loki", "postgres", "alertmanager"}


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA_DIR / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


GEN = load_generator()


def committed_dashboards() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text())
        for p in sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
    }


def test_regenerating_changes_nothing(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(GRAFANA_DIR / "generate.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    fresh = {p.name: p.read_text() for p in tmp_path.glob("*.json")}
    committed = {p.name: p.read_text() for p in (GRAFANA_DIR / "dashboards").glob("*.json")}
    assert fresh == committed, "run: python monitoring/grafana/generate.py"
    check = subprocess.run(
        [sys.executable, str(GRAFANA_DIR / "generate.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout


def test_the_five_dashboards_exist() -> None:
    titles = {d["title"] for d in committed_dashboards().values()}
    assert titles == {
        "otel-assist: Overview",
        "otel-assist: Logs",
        "otel-assist: Cron jobs",
        "otel-assist: Queues",
        "otel-assist: User memory",
    }


@pytest.mark.parametrize("name", sorted(committed_dashboards()))
def test_dashboard_structure(name: str) -> None:
    dash = committed_dashboards()[name]
    assert dash["schemaVersion"] >= 41  # Grafana 12
    assert dash["uid"].startswith("otel-assist-") and len(dash["uid"]) <= 40
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in dash["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in DATASOURCE_UIDS
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in DATASOURCE_UIDS
    variables = {v["name"] for v in dash["templating"]["list"]}
    text = json.dumps(dash)
    for used in set(re.findall(r"\$\{?([a-z_]+)", text)):
        if not used.startswith("_"):
            assert used in variables, f"{name}: ${used} is not a dashboard variable"


def test_datasources_have_fixed_uids_and_no_secrets() -> None:
    doc = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml").read_text()
    )
    by_uid = {d["uid"]: d for d in doc["datasources"]}
    assert set(by_uid) == DATASOURCE_UIDS
    pg = by_uid["postgres"]
    assert pg["user"] == "grafana_ro"
    # the form Grafana documents for values that may contain $
    assert pg["secureJsonData"]["password"] == "$GRAFANA_PG_PASSWORD"
    assert by_uid["alertmanager"]["jsonData"]["implementation"] == "prometheus"
    derived = by_uid["loki"]["jsonData"]["derivedFields"][0]
    assert derived["matcherType"] == "label" and derived["matcherRegex"] == "correlation_id"
    assert "var-correlation_id=$${__value.raw}" in derived["url"]  # $$ = literal $ here
    assert sum(1 for d in doc["datasources"] if d.get("isDefault")) == 1


def test_dashboards_provider_points_at_the_generated_files() -> None:
    doc = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_grafana_ini_embedding_off_anonymous_off_no_password() -> None:
    ini = configparser.ConfigParser()
    ini.read(GRAFANA_DIR / "grafana.ini")
    assert ini.getboolean("security", "allow_embedding") is False  # nothing embeds it
    assert ini.getboolean("auth.anonymous", "enabled") is False
    assert not ini.has_option("security", "admin_password")
    assert "GF_SECURITY_ADMIN_PASSWORD" in (GRAFANA_DIR / "grafana.ini").read_text()


# --------------------------------------------------------------------------- LogQL


def loki_index_labels() -> set[str]:
    loki = yaml.safe_load((MONITORING / "loki" / "loki.yaml").read_text())
    labels = set()
    for rule in loki["limits_config"]["otlp_config"]["resource_attributes"]["attributes_config"]:
        if rule["action"] == "index_label":
            labels |= {a.replace(".", "_") for a in rule["attributes"]}
    return labels


def contract_structured_metadata() -> set[str]:
    contract = (ROOT / "docs" / "telemetry-contract.md").read_text()
    section = contract.split("## Log records", 1)[1].split("## Metrics", 1)[0]
    return {a.replace(".", "_") for a in re.findall(r"`([a-z_.]+)`", section)}


def logql_queries() -> list[str]:
    return [
        q.expr for d in GEN.DASHBOARDS for p in d.panels() for q in p.queries if q.lang == "logql"
    ]


def test_loki_index_labels_are_service_and_environment() -> None:
    assert loki_index_labels() == {"service_name", "deployment_environment_name"}


@pytest.mark.parametrize("expr", logql_queries())
def test_logql_uses_index_labels_and_contract_metadata_only(expr: str) -> None:
    selectors = re.findall(r"\{([^}]*)\}", expr)
    assert selectors
    for selector in selectors:
        names = set(re.findall(r"([a-z_]+)\s*=~?", selector))
        assert names and names <= loki_index_labels(), selector
    filters = set(re.findall(r"\|\s*([a-z_]+)\s*=~?", expr))
    allowed = contract_structured_metadata() | {"detected_level"}
    assert filters <= allowed, filters - allowed
    assert {"correlation_id", "user_id", "event_type"} <= contract_structured_metadata()


def test_logs_dashboard_filters_and_correlation_link() -> None:
    logs = committed_dashboards()["logs.json"]
    variables = {v["name"]: v for v in logs["templating"]["list"]}
    assert {"service", "level", "event_type", "correlation_id", "user_id"} <= set(variables)
    lines = next(p for p in logs["panels"] if p["title"] == "Log lines")
    expr = lines["targets"][0]["expr"]
    for name in ("service_name", "detected_level", "event_type", "correlation_id", "user_id"):
        assert name in expr
    links = [
        link["url"]
        for p in logs["panels"]
        if p["type"] == "table"
        for o in p["fieldConfig"]["overrides"]
        if o["matcher"]["options"] == "correlation_id"
        for prop in o["properties"]
        if prop["id"] == "links"
        for link in prop["value"]
    ]
    assert links and all("var-correlation_id=${__value.raw}" in u for u in links)
    assert all(u.startswith("/d/otel-assist-logs/") for u in links)


def test_cron_table_colours_status_and_shows_error() -> None:
    cron = committed_dashboards()["cron.json"]
    table = next(p for p in cron["panels"] if p["title"] == "Recent executions")
    assert "error" in table["targets"][0]["rawSql"]
    status = next(
        o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "status"
    )
    mapping = next(p for p in status["properties"] if p["id"] == "mappings")["value"][0]["options"]
    assert mapping["failed"]["color"] == "red" and mapping["completed"]["color"] == "green"
