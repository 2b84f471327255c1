"""Alertmanager config: rendered by the real entrypoint, checked by the real amtool."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.helpers import ALERTMANAGER_DIR, ROOT

AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
ENTRYPOINT = ALERTMANAGER_DIR / "entrypoint.sh"
TOKEN = "123456789:TEST-stand-in_token"  # not a real bot: nothing here talks to Telegram


def render(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        "PATH": os.environ["PATH"],
        "ALERTMANAGER_CONFIG_OUT": str(tmp_path / "out" / "alertmanager.yml"),
        "ALERTMANAGER_RENDER_ONLY": "1",
        **env,
    }
    return subprocess.run(["sh", str(ENTRYPOINT)], env=full, capture_output=True, text=True)


def rendered(tmp_path: Path) -> dict[str, Any]:
    return yaml.safe_load((tmp_path / "out" / "alertmanager.yml").read_text())


def test_entrypoint_renders_token_file_and_chat_id_and_amtool_accepts_it(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    out = render(tmp_path, TELEGRAM_BOT_TOKEN_FILE=str(token_file), TELEGRAM_CHAT_ID="-100200300")
    assert out.returncode == 0, out.stderr
    path = tmp_path / "out" / "alertmanager.yml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    check = subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, text=True)
    print(check.stdout)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "2 inhibit rules" in check.stdout and "1 templates" in check.stdout
    config = rendered(tmp_path)
    for receiver in config["receivers"]:
        tg = receiver["telegram_configs"][0]
        assert tg["bot_token"] == TOKEN
        assert tg["chat_id"] == -100200300
        assert tg["api_url"] == "https://api.telegram.org"
        assert tg["parse_mode"] == "HTML"
        assert tg["send_resolved"] is True
    assert "__" not in path.read_text()


def test_entrypoint_takes_token_from_env_and_api_url_override(tmp_path: Path) -> None:
    out = render(
        tmp_path,
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_CHAT_ID="42",
        TELEGRAM_API_URL="http://127.0.0.1:9",
    )
    assert out.returncode == 0, out.stderr
    tg = rendered(tmp_path)["receivers"][0]["telegram_configs"][0]
    assert (tg["bot_token"], tg["chat_id"], tg["api_url"]) == (TOKEN, 42, "http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TELEGRAM_CHAT_ID": "42"}, "TELEGRAM_BOT_TOKEN"),
        ({"TELEGRAM_BOT_TOKEN": TOKEN}, "TELEGRAM_CHAT_ID must be set"),
        ({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": "@channel"}, "integer chat id"),
        ({"TELEGRAM_BOT_TOKEN": "x|y", "TELEGRAM_CHAT_ID": "42"}, "does not look like"),
        ({"TELEGRAM_BOT_TOKEN_FILE": "/nonexistent", "TELEGRAM_CHAT_ID": "42"}, "not readable"),
    ],
)
def test_entrypoint_refuses_missing_or_bad_settings(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    out = render(tmp_path, **env)
    assert out.returncode == 64
    assert message in out.stderr
    assert not (tmp_path / "out" / "alertmanager.yml").exists()


def test_routing_grouping_and_inhibition() -> None:
    config = yaml.safe_load((ALERTMANAGER_DIR / "alertmanager.yml").read_text())
    route = config["route"]
    assert route["group_by"] == ["alertname", "service"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "30s",
        "5m",
        "4h",
    )
    inhibit = config["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['alertname="ServiceDown"']
    assert inhibit["target_matchers"] == ['alertname=~"HighErrorLogRate|HighHttp5xxRate"']
    assert inhibit["equal"] == ["service"]


def test_nothing_secret_is_committed() -> None:
    token_like = re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b")
    for path in (ROOT / "monitoring").rglob("*"):
        if path.is_file():
            assert not token_like.search(path.read_text(errors="replace")), path


def _render_template(tmp_path: Path, data: dict[str, Any]) -> str:
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data))
    out = subprocess.run(
        [
            AMTOOL,
            "template",
            "render",
            f"--template.glob={ALERTMANAGER_DIR / 'templates' / '*.tmpl'}",
            f"--template.data={data_file}",
            '--template.text={{ template "telegram.otel_assist.message" . }}',
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _alert(status: str, summary: str, **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "HighErrorLogRate",
            "service": "rest_service",
            "severity": "critical",
            **labels,
        },
        "annotations": {
            "summary": summary,
            "description": "d <b>&</b>",
            "runbook": "Check first: the Logs dashboard",
        },
        "startsAt": "2026-11-27T17:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": summary,
    }


def test_message_template_escapes_html_and_reads_well(tmp_path: Path) -> None:
    labels = {"alertname": "HighErrorLogRate", "service": "rest<service>&", "severity": "critical"}
    text = _render_template(
        tmp_path,
        {
            "receiver": "telegram",
            "status": "firing",
            "alerts": [
                _alert("firing", "<script>alert(1)</script> 33% errors", service="rest<service>&")
            ],
            "groupLabels": labels,
            "commonLabels": labels,
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
        },
    )
    print(text)
    assert text.startswith("🔥 <b>FIRING</b> · <b>HighErrorLogRate</b>")
    assert "service: <code>rest&lt;service&gt;&amp;</code>" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 33% errors" in text
    assert "<script>" not in text
    assert "d &lt;b&gt;&amp;&lt;/b&gt;" in text
    assert "<i>Check first: the Logs dashboard</i>" in text
    # Only the tags Telegram's HTML mode knows.
    assert set(re.findall(r"</?([a-z]+)", text)) <= {"b", "i", "code", "a"}


def test_message_template_resolved_and_long_groups(tmp_path: Path) -> None:
    labels = {"alertname": "ServiceDown", "service": "calendar_service", "severity": "critical"}
    alerts = [_alert("resolved", f"calendar_service is down #{i}") for i in range(8)]
    text = _render_template(
        tmp_path,
        {
            "receiver": "telegram",
            "status": "resolved",
            "alerts": alerts,
            "groupLabels": labels,
            "commonLabels": labels,
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
        },
    )
    print(text)
    assert text.startswith("✅ <b>RESOLVED</b> · <b>ServiceDown</b>")
    assert text.count("🟢") == 5
    assert "8 alerts in this group; the first 5 are shown." in text
