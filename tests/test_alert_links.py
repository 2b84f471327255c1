"""The Telegram alert message links to Grafana: the dashboard a rule names, at GRAFANA_URL.

The project's Alertmanager config and template, rendered by the real entrypoint, in the
real Alertmanager, delivering to the tests' stand-in for Telegram's Bot API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests import servers
from tests.monitoring.stack import CHAT_ID, alertmanager_config, start_telegram_stand_in

ROOT = Path(__file__).resolve().parent.parent
ALERTMANAGER_DIR = ROOT / "monitoring" / "alertmanager"

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus-alertmanager") is None, reason="needs prometheus-alertmanager"
)


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
