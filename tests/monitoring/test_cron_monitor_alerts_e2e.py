"""CronMonitorMissed and CronMonitorFailing for real: rest_service's sweeper -> its /metrics
-> the real Prometheus with the project's rule file -> the real Alertmanager with the
project's config -> the Telegram stand-in (the only stand-in), naming the monitor.

Prometheus scrapes rest_service's /metrics directly here (job "rest_service", the label the
Collector path gives it too), so this test needs no Collector build.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests import servers
from tests.monitoring.helpers import RULES_DIR
from tests.monitoring.stack import (
    CHAT_ID,
    SentMessage,
    alertmanager_config,
    start_telegram_stand_in,
)
from tests.rest_service.conftest import TOKEN
from tests.rest_service.test_monitors_e2e import rest_process, service_env

pytestmark = pytest.mark.timeout(240)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_monitor_alerts_reach_telegram(postgres: servers.Postgres, tmp_path: Path) -> None:
    database_url = postgres.create_database(f"rs_alert_{uuid.uuid4().hex[:8]}")
    dbname = database_url.rsplit("/", 1)[1]
    telegram = start_telegram_stand_in()
    started: list[servers.ManagedProcess] = []
    env = service_env(database_url, MONITOR_SWEEP_INTERVAL_SECONDS="0.2")
    try:
        with rest_process(env, tmp_path / "rest.log") as (url, _proc):
            api = f"{url}/api/v1"
            am = servers.start_alertmanager(
                tmp_path / "am", alertmanager_config(tmp_path / "am", telegram.url)
            )
            started.append(am.process)
            rules = tmp_path / "rules"
            rules.mkdir()
            shutil.copy(RULES_DIR / "cron_monitors.yml", rules)
            host_port = url.removeprefix("http://")
            config = {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules / "*.yml")],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am.port}"]}]}]
                },
                "scrape_configs": [
                    {"job_name": "rest_service", "static_configs": [{"targets": [host_port]}]}
                ],
            }
            prom = servers.start_prometheus(tmp_path / "prom", yaml.safe_dump(config))
            started.append(prom.process)

            # "nightly-export": never checked in, 5 minutes behind -> missed
            spec = {"cron": "* * * * *", "grace_seconds": 0}
            httpx.put(f"{api}/monitors/nightly-export", json=spec, headers=AUTH).raise_for_status()
            postgres.psql(
                "UPDATE cron_monitors SET next_expected_at = "
                "date_trunc('minute', now()) - interval '5 minutes' "
                "WHERE slug = 'nightly-export'",
                database=dbname,
            )
            # "flaky-sync": its run failed -> failing, with a last check-in time
            spec = {"interval_seconds": 3600}
            httpx.put(f"{api}/monitors/flaky-sync", json=spec, headers=AUTH).raise_for_status()
            r = httpx.post(
                f"{api}/monitors/flaky-sync/checkins",
                data={"status": "error", "exit_code": "1"},
                headers=AUTH,
            )
            assert r.status_code == 202, r.text
            # "healthy": ok -> no alert
            httpx.put(f"{api}/monitors/healthy", json=spec, headers=AUTH).raise_for_status()
            httpx.post(
                f"{api}/monitors/healthy/checkins", data={"status": "ok"}, headers=AUTH
            ).raise_for_status()

            t0 = time.monotonic()

            def firing(name: str, monitor: str) -> object:
                def match(m: SentMessage) -> bool:
                    return (
                        m.text.startswith(f"🔥 <b>FIRING</b> · <b>{name}</b>")
                        and f"Cron monitor {monitor} " in m.text
                    )

                return match

            missed = telegram.wait_for(
                firing("CronMonitorMissed", "nightly-export"), 90, "CronMonitorMissed"
            )
            print(f"CronMonitorMissed reached Telegram after {missed.received_at - t0:.1f}s")
            assert missed.chat_id == str(CHAT_ID)
            assert "service: <code>rest_service</code>" in missed.text
            assert "Last check-in: never." in missed.text
            failing = telegram.wait_for(
                firing("CronMonitorFailing", "flaky-sync"), 90, "CronMonitorFailing"
            )
            print(f"CronMonitorFailing reached Telegram after {failing.received_at - t0:.1f}s")
            assert "Last check-in: 20" in failing.text and "+0000 UTC." in failing.text
            assert all("healthy" not in m.text for m in telegram.messages)
            # recovery: a good run resolves the failing alert
            httpx.post(
                f"{api}/monitors/flaky-sync/checkins", data={"status": "ok"}, headers=AUTH
            ).raise_for_status()
            resolved = telegram.wait_for(
                lambda m: m.text.startswith("✅ <b>RESOLVED</b> · <b>CronMonitorFailing</b>"),
                90,
                "CronMonitorFailing resolved",
            )
            assert "flaky-sync" in resolved.text
    finally:
        for process in reversed(started):
            process.stop()
        telegram.server.shutdown()
