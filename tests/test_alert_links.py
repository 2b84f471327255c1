"""The Telegram alert message links to Grafana: the dashboard a rule names, at GRAFANA_URL.

The project's Alertmanager config and template, rendered by the real entrypoint, in the
real Alertmanager, delivering to the tests' stand-in for Telegram's Bot API.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import servers
from tests.monitoring.helpers import GRAFANA_DIR, alerting_rules
from tests.monitoring.stack import CHAT_ID, alertmanager_config, start_telegram_stand_in

ROOT = Path(__file__).resolve().parent.parent
ALERTMANAGER_DIR = ROOT / "monitoring" / "alertmanager"

needs_alertmanager = pytest.mark.skipif(
    shutil.which("prometheus-alertmanager") is None, reason="needs prometheus-alertmanager"
)


# --------------------------------------------------------------------------- the rules' links


def _dashboards() -> dict[str, set[str]]:
    """uid -> names of its template variables, for every provisioned dashboard."""
    out = {}
    for path in sorted((GRAFANA_DIR / "dashboards").glob("*.json")):
        doc = json.loads(path.read_text())
        out[doc["uid"]] = {v["name"] for v in doc.get("templating", {}).get("list", [])}
    return out


def _group_by() -> set[str]:
    config = yaml.safe_load((ALERTMANAGER_DIR / "alertmanager.yml").read_text())
    return set(config["route"]["group_by"])


# A rule's labels that are the same for every alert of one Alertmanager group: the group_by
# labels (alertname, service) and `job`, which every rule copies into `service`.
_TEMPLATE = re.compile(r"\{\{\s*(?P<body>.*?)\s*\}\}")
_GROUP_CONSTANT = {"{{ $labels.job | urlquery }}"}


def dashboard_link_problems(rule: dict[str, Any], dashboards: dict[str, set[str]]) -> list[str]:
    """Why ``rule``'s Telegram message would carry no Grafana link, or a wrong one.

    The template links ``.CommonAnnotations.dashboard``: an annotation that differs between
    the alerts of one group (a label other than the group's own in it) vanishes from the
    message, so only ``job`` (= ``service``, a group_by label) may be templated in.
    """
    name = rule.get("alert", "?")
    path = rule.get("annotations", {}).get("dashboard")
    if not path:
        return [f"{name}: no `dashboard` annotation (the alert message would have no Grafana link)"]
    problems = []
    for m in _TEMPLATE.finditer(path):
        if m.group(0) not in _GROUP_CONSTANT:
            problems.append(f"{name}: {m.group(0)} differs within a group; only the job may vary")
    concrete = _TEMPLATE.sub("x", path)
    url = urllib.parse.urlsplit(concrete)
    found = re.fullmatch(r"/d/([A-Za-z0-9_-]+)", url.path)
    if url.scheme or url.netloc or not found:
        return [*problems, f"{name}: {path!r} is not a Grafana path /d/<uid>[?var-...]"]
    uid = found.group(1)
    if uid not in dashboards:
        return [*problems, f"{name}: no provisioned dashboard has uid {uid!r}"]
    for key, _value in urllib.parse.parse_qsl(url.query, keep_blank_values=True):
        if not key.startswith("var-") or key[4:] not in dashboards[uid]:
            problems.append(f"{name}: {key!r} is not a variable of dashboard {uid}")
    return problems


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: r["alert"])
def test_every_rule_links_its_dashboard(rule: dict[str, Any]) -> None:
    assert {"alertname", "service"} <= _group_by()  # what the one-template-per-group rule assumes
    assert rule["labels"]["service"] == "{{ $labels.job }}"
    assert dashboard_link_problems(rule, _dashboards()) == []


def test_the_link_check_fails_on_bad_rules() -> None:
    """The check above can fail: each way a rule can lose or break its link is reported."""
    dashboards = _dashboards()
    base = {"alert": "X", "labels": {"service": "{{ $labels.job }}"}}

    def problems(dashboard: str | None) -> list[str]:
        annotations = {"summary": "s"} if dashboard is None else {"dashboard": dashboard}
        return dashboard_link_problems({**base, "annotations": annotations}, dashboards)

    assert problems(None) == [
        "X: no `dashboard` annotation (the alert message would have no Grafana link)"
    ]
    assert "not a Grafana path" in problems("https://grafana.example.org/d/otel-assist-cron")[0]
    assert "no provisioned dashboard has uid 'nope'" in problems("/d/nope")[0]
    assert "'var-queue' is not a variable" in problems("/d/otel-assist-cron?var-queue=a")[0]
    per_alert = problems("/d/otel-assist-cron?var-job_type={{ $labels.job_type }}")
    assert "differs within a group" in per_alert[0]
    assert problems("/d/otel-assist-logs?var-service={{ $labels.job | urlquery }}") == []


def _post_alert(url: str, annotations: dict[str, str]) -> None:
    alert = [
        {
            "labels": {"alertname": "CronJobFailures", "service": "cron", "severity": "critical"},
            "annotations": {"summary": "jobs fail", "description": "5 failed runs", **annotations},
        }
    ]
    request = urllib.request.Request(
        f"{url}/api/v2/alerts",
        data=json.dumps(alert).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


@needs_alertmanager
def test_message_links_to_the_rule_dashboard_in_grafana(tmp_path: Path) -> None:
    telegram = start_telegram_stand_in()
    try:
        config = alertmanager_config(tmp_path, telegram.url)  # GRAFANA_URL unset: default
        am = servers.start_alertmanager(tmp_path / "am", config)
        try:
            _post_alert(am.url, {"dashboard": "/d/otel-assist-cron"})
            message = telegram.wait_for(
                lambda m: "CronJobFailures" in m.text, 60, "for CronJobFailures"
            )
            assert message.chat_id == str(CHAT_ID)
            assert '<a href="http://localhost:3000/d/otel-assist-cron">Grafana</a>' in message.text
        finally:
            am.process.stop()
    finally:
        telegram.server.shutdown()


@needs_alertmanager
def test_grafana_url_is_configurable_and_checked(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("123456:ABC-def_1\n")
    chat = tmp_path / "chat"
    chat.write_text("-1001\n")
    base = {
        "PATH": "/usr/bin:/bin",
        "TELEGRAM_BOT_TOKEN_FILE": str(token),
        "TELEGRAM_CHAT_ID_FILE": str(chat),
        "ALERTMANAGER_CONFIG_OUT": str(tmp_path / "out" / "alertmanager.yml"),
        "ALERTMANAGER_RENDER_ONLY": "1",
    }
    run = subprocess.run(
        ["sh", str(ALERTMANAGER_DIR / "entrypoint.sh")],
        env={**base, "GRAFANA_URL": "https://grafana.example.org/"},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    rendered = (tmp_path / "out" / "alertmanager.yml").read_text()
    assert "chat_id: -1001" in rendered  # from the chat id file (a compose secret)
    template = (tmp_path / "out" / "templates" / "telegram.tmpl").read_text()
    assert 'href="https://grafana.example.org{{ .CommonAnnotations.dashboard' in template
    assert "__GRAFANA_URL__" not in template
    bad = subprocess.run(
        ["sh", str(ALERTMANAGER_DIR / "entrypoint.sh")],
        env={**base, "GRAFANA_URL": 'http://x/"><script>'},
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "GRAFANA_URL must be an http(s) URL" in bad.stderr
