"""Cron monitors for real: uvicorn rest_service processes on the real Postgres, curl from a
shell, a tracked APScheduler process that is SIGKILLed, two sweepers racing.

Waits poll with a deadline; the only long waits are the real schedule's (a minutely cron
job has to miss a real minute).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import servers
from tests.polling import poll
from tests.rest_service.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "otel-assist-checkin.sh"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REST_SERVICE_TOKEN": TOKEN,
        "MIGRATE_ON_START": "true",
        "RETENTION_ENABLED": "false",
        "OTEL_LOGS_EXPORTER": "none",
        "AUTH_FAILURE_LIMIT": "0",
        **extra,
    }


rest_process = servers.rest_service_process


def runs(api: str, slug: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{api}/job-executions", params={"limit": 1000, "hours": 24}, headers=AUTH)
    r.raise_for_status()
    return [row for row in r.json() if row["job_id"] == slug]


def test_shell_checkins_with_curl(postgres: servers.Postgres, tmp_path: Path) -> None:
    database_url = postgres.create_database(f"rs_mon_{uuid.uuid4().hex[:8]}")
    env = service_env(database_url, MONITOR_SWEEP_INTERVAL_SECONDS="0.2")
    with rest_process(env, tmp_path / "rest.log") as (url, _proc):
        api = f"{url}/api/v1"
        for slug, spec in [
            ("shell-job", {"interval_seconds": 3600}),
            ("shell-stuck", {"interval_seconds": 3600, "max_runtime_seconds": 1}),
        ]:
            httpx.put(f"{api}/monitors/{slug}", json=spec, headers=AUTH).raise_for_status()
        shell_env = {
            **os.environ,
            "OTEL_ASSIST_HISTORY_URL": api,
            "OTEL_ASSIST_HISTORY_TOKEN": TOKEN,
            "TOKEN": TOKEN,
            "REST": api,
        }
        # the wrapper: ok, then an error with its exit code
        ok = subprocess.run(
            [str(SCRIPT), "shell-job", "sh", "-c", 'echo "cid=$CORRELATION_ID"'],
            env=shell_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ok.returncode == 0, ok.stderr
        cid = ok.stdout.strip().removeprefix("cid=")
        failed = subprocess.run(
            [str(SCRIPT), "shell-job", "sh", "-c", "exit 7"],
            env=shell_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert failed.returncode == 7 and failed.stderr == ""
        rows = {row["status"]: row for row in runs(api, "shell-job")}
        assert set(rows) == {"completed", "failed"}
        assert rows["completed"]["correlation_id"] == cid and cid
        assert rows["completed"]["started_at"] and rows["completed"]["finished_at"]
        assert rows["failed"]["error"] == "exit code 7"
        # the one-liners from docs/monitors.md
        one_liner = (
            'curl -fsS -X POST -H "Authorization: Bearer $TOKEN" '
            '"$REST/monitors/{slug}/checkins" -d status={status} -d check_in_id={cid}'
        )

        def sh(slug: str, status: str, cid: str) -> subprocess.CompletedProcess[str]:
            command = one_liner.format(slug=slug, status=status, cid=cid)
            return subprocess.run(
                ["sh", "-c", command], env=shell_env, capture_output=True, text=True, timeout=30
            )

        # in_progress, then nothing: timed_out once past max_runtime
        start = sh("shell-stuck", "in_progress", "s1")
        assert start.returncode == 0, start.stderr
        poll(
            lambda: [r for r in runs(api, "shell-stuck") if r["status"] == "timed_out"],
            15,
            "the stuck run to be marked timed_out",
        )
        mon = httpx.get(f"{api}/monitors/shell-stuck", headers=AUTH).json()
        assert mon["state"] == "failing"
        # duplicates: the same check-in twice is one run
        first = sh("shell-job", "ok", "dup-1")
        second = sh("shell-job", "ok", "dup-1")
        assert '"duplicate":false' in first.stdout and '"duplicate":true' in second.stdout
        assert len(runs(api, "shell-job")) == 3
        # unknown monitor: curl -f fails, the server says why
        missing = sh("no-such-job", "ok", "x")
        assert missing.returncode == 22 and "404" in missing.stderr
        # rest_service unreachable: the wrapper still runs the command and keeps its code
        down_env = {**shell_env, "OTEL_ASSIST_HISTORY_URL": "http://127.0.0.1:9/api/v1"}
        down_env["OTEL_ASSIST_CHECKIN_TIMEOUT"] = "2"
        down = subprocess.run(
            [str(SCRIPT), "shell-job", "sh", "-c", "exit 3"],
            env=down_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert down.returncode == 3 and "check-in to shell-job failed" in down.stderr
        assert TOKEN not in down.stderr + failed.stderr + ok.stderr


@pytest.mark.timeout(240)
def test_two_rest_services_record_each_miss_once(
    postgres: servers.Postgres, tmp_path: Path
) -> None:
    """Two processes sweep the same monitors; one of them is SIGKILLed mid-sweep. Every
    expected run ends up with exactly one missed row, and every cursor is consistent."""
    database_url = postgres.create_database(f"rs_mon_{uuid.uuid4().hex[:8]}")
    dbname = database_url.rsplit("/", 1)[1]
    env = service_env(database_url, MONITOR_SWEEP_INTERVAL_SECONDS="0.05")
    slugs = [f"race-{i:02d}" for i in range(30)]
    with rest_process(env, tmp_path / "a.log") as (url_a, proc_a):
        api = f"{url_a}/api/v1"
        for slug in slugs:
            spec = {"cron": "* * * * *", "grace_seconds": 0}
            httpx.put(f"{api}/monitors/{slug}", json=spec, headers=AUTH).raise_for_status()
        with rest_process(env, tmp_path / "b.log") as (url_b, _proc_b):
            # 90 minutes behind: 30 x ~91 misses for two sweepers to race over
            postgres.psql(
                "UPDATE cron_monitors SET next_expected_at = "
                "date_trunc('minute', now()) - interval '90 minutes'",
                database=dbname,
            )
            start = poll(
                lambda: (
                    postgres.psql(
                        "SELECT count(*) FROM job_executions WHERE status = 'missed'",
                        database=dbname,
                    ).strip()
                    not in ("", "0")
                ),
                30,
                "the first recorded miss",
            )
            assert start
            os.killpg(proc_a.pid, signal.SIGKILL)  # mid-sweep: half the work may be undone
            proc_a.wait(timeout=10)

            def settled() -> bool:
                behind = postgres.psql(
                    "SELECT count(*) FROM cron_monitors "
                    "WHERE next_expected_at <= now() - interval '1 minute'",
                    database=dbname,
                ).strip()
                return behind == "0"

            poll(settled, 120, "the surviving sweeper to catch every monitor up")
            api_b = f"{url_b}/api/v1"
            mon = httpx.get(f"{api_b}/monitors/race-00", headers=AUTH).json()
            assert mon["state"] == "missed"
    dupes = postgres.psql(
        "SELECT job_id, scheduled_at FROM job_executions "
        "GROUP BY job_id, scheduled_at HAVING count(*) > 1",
        database=dbname,
    ).strip()
    assert dupes == "", dupes
    # per monitor: one miss for every expected minute from the start up to its cursor
    rows = postgres.psql(
        "SELECT m.slug, count(j.id), "
        "extract(epoch FROM m.next_expected_at - min(j.scheduled_at))::int / 60 "
        "FROM cron_monitors m JOIN job_executions j ON j.job_id = m.slug "
        "AND j.status = 'missed' GROUP BY m.slug, m.next_expected_at",
        database=dbname,
    ).strip()
    lines = [line.split("|") for line in rows.splitlines() if line.strip()]
    assert len(lines) == len(slugs)
    for slug, count, minutes in lines:
        assert int(count) == int(minutes) and int(count) >= 90, (slug, count, minutes)


@pytest.mark.timeout(330)
def test_sigkilled_scheduler_is_missed_then_ok_after_restart(
    postgres: servers.Postgres, tmp_path: Path
) -> None:
    """A real tracked APScheduler process registers its job as a monitor; SIGKILLed, its
    next run is marked missed by rest_service within grace + sweep interval; restarted,
    the monitor is back to ok."""
    database_url = postgres.create_database(f"rs_mon_{uuid.uuid4().hex[:8]}")
    sweep = 0.5
    grace = 5  # track_scheduler(grace=5) in the worker
    env = service_env(database_url, MONITOR_SWEEP_INTERVAL_SECONDS=str(sweep))
    with rest_process(env, tmp_path / "rest.log") as (url, _proc):
        api = f"{url}/api/v1"
        worker_env = {
            **os.environ,
            "OTEL_ASSIST_HISTORY_URL": api,
            "OTEL_ASSIST_HISTORY_TOKEN": TOKEN,
            "OTEL_ASSIST_HISTORY_FLUSH_INTERVAL_MS": "100",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "report-scheduler",
        }

        def start_worker(name: str) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.rest_service.monitor_scheduler",
                    "report",
                    "* * * * *",
                ],
                env=worker_env,
                cwd=ROOT,
                stdout=(tmp_path / name).open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def monitor() -> dict[str, Any] | None:
            r = httpx.get(f"{api}/monitors/report", headers=AUTH)
            return r.json() if r.status_code == 200 else None

        worker = start_worker("worker1.log")
        try:
            mon = poll(monitor, 30, "the tracker to register its job")
            assert mon["cron"] == "* * * * *" and mon["grace_seconds"] == grace
            assert mon["owner_service"] == "report-scheduler"
            assert mon["max_runtime_seconds"] == 30
            poll(
                lambda: [r for r in runs(api, "report") if r["status"] == "completed"],
                75,
                "a tracked run",
            )
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        killed_at = datetime.now(UTC)
        expected = (killed_at + timedelta(minutes=1)).replace(second=0, microsecond=0)
        deadline = (expected - killed_at).total_seconds() + grace + sweep + 3
        missed = poll(
            lambda: [r for r in runs(api, "report") if r["status"] == "missed"],
            deadline,
            "rest_service to mark the next run missed",
        )
        assert [datetime.fromisoformat(r["scheduled_at"]) for r in missed] == [expected]
        assert datetime.now(UTC) <= expected + timedelta(seconds=grace + sweep + 3)
        assert monitor()["state"] == "missed"  # type: ignore[index]
        metrics_text = httpx.get(f"{url}/metrics").text
        status_lines = [
            line
            for line in metrics_text.splitlines()
            if line.startswith("cron_monitor_status{") and 'monitor="report"' in line
        ]
        assert status_lines and float(status_lines[0].rsplit(" ", 1)[1]) == 2, status_lines
        worker = start_worker("worker2.log")
        try:
            poll(lambda: monitor()["state"] == "ok", 80, "the restarted scheduler's run")  # type: ignore[index]
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        statuses = sorted(r["status"] for r in runs(api, "report"))
        assert statuses.count("missed") == 1 and statuses.count("completed") >= 2
