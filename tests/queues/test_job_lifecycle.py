"""One truth for a run's status (docs/job-lifecycle.md).

The same seven kinds of run - completed, failed, timed-out-then-completed,
timed-out-then-failed, missed, skipped (overlap) and cancelled (in flight at a normal
``scheduler.shutdown()``) - driven through a real AsyncIOScheduler, then counted in every
place an operator looks: the service's ``/metrics`` (the real Prometheus exporter), the
rest_service API stats and ``?status=`` filter (a real rest_service on the real Postgres,
fed by the real history shipper), the admin jobs page's cards, and Prometheus' own
evaluation of the alert expressions of ``monitoring/prometheus/rules/cron.yml`` over the
same series (``promtool test rules``). Time past a max runtime is stepped on the tracker's
injectable clock, not slept through.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from starlette.applications import Starlette

from otel_assist.history.shipper import HistorySettings, HistoryShipper
from otel_assist.jobs import RUN_STATUSES, JobTracker, track_scheduler
from otel_assist.jobs.monitors import registrar_for
from otel_assist.testing import Capture
from otel_assist.web.asgi import instrument_app
from tests import metric_reader, servers
from tests.polling import poll_async
from tests.queues.conftest import REPO, TOKEN, subprocess_env
from tests.queues.job_clock import SteppedClock, sweep_now

JOB_TYPE = "lifecycle"
SERVICE = "lifecycle_service"
#: The ground truth the scenario below produces (the "overlap" job's first run completes).
EXPECTED = {
    "completed": 2,
    "failed": 1,
    "timed_out": 2,
    "missed": 1,
    "skipped": 1,
    "cancelled": 1,
}
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
CRON_RULES = REPO / "monitoring" / "prometheus" / "rules" / "cron.yml"


@pytest.fixture
def rest_url(postgres: servers.Postgres, tmp_path: Path) -> Iterator[str]:
    """A rest_service of this test's own, on a fresh Postgres database."""
    env = subprocess_env(
        DATABASE_URL=postgres.create_database(f"lc_{uuid.uuid4().hex[:10]}"),
        REST_SERVICE_TOKEN=TOKEN,
        MIGRATE_ON_START="true",
        RETENTION_ENABLED="false",
        OTEL_LOGS_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_ASSIST_LOG_LEVEL="WARNING",
    )
    with servers.serve_rest_service(env, tmp_path / "rest_service.log") as url:
        yield url


@pytest.fixture
def capture() -> Iterator[Capture]:
    """This process as a configured service with the real Prometheus exporter."""
    cap = Capture(SERVICE, metrics_exporters=("prometheus",))
    try:
        yield cap
    finally:
        cap.close()


async def drive_runs(
    tracker: JobTracker, scheduler: AsyncIOScheduler, clock: SteppedClock, service: Starlette
) -> None:
    gates = {name: asyncio.Event() for name in ("slow_ok", "slow_fail", "overlap")}
    started: dict[str, asyncio.Event] = {
        name: asyncio.Event() for name in ("slow_ok", "slow_fail", "overlap", "forever")
    }
    log_lines: list[str] = []

    async def ok() -> None:
        from otel_assist.logs.configure import get_logger

        get_logger("lifecycle.job").info("the job's own line")
        log_lines.append("ok")

    async def boom() -> None:
        raise ValueError("the job broke")

    async def wait_for(name: str, fail: bool = False) -> None:
        started[name].set()
        await gates[name].wait()
        if fail:
            raise RuntimeError(f"{name} failed after its max runtime")

    async def forever() -> None:
        started["forever"].set()
        await asyncio.Event().wait()

    now = datetime.now(UTC)
    scheduler.add_job(ok, "date", run_date=now, id="ok")
    scheduler.add_job(boom, "date", run_date=now, id="boom")
    scheduler.add_job(wait_for, "date", run_date=now, id="slow_ok", args=["slow_ok"])
    scheduler.add_job(wait_for, "date", run_date=now, id="slow_fail", args=["slow_fail", True])
    # Due ten minutes ago with a 1 s misfire grace: APScheduler reports it missed.
    scheduler.add_job(
        ok, "date", run_date=now - timedelta(minutes=10), id="late", misfire_grace_time=1
    )
    scheduler.start()
    for name in ("slow_ok", "slow_fail"):
        await asyncio.wait_for(started[name].wait(), 20)
    sweep_now(tracker)  # nothing is over its max runtime yet
    assert not any(info.timed_out for info in tracker.running.values())
    clock.offset = 31.0  # past the 30 s max runtime, without sleeping
    sweep_now(tracker)
    sweep_now(tracker)  # reported once, however many sweeps see it

    # Runs that start now are within their max runtime on the stepped clock.
    scheduler.add_job(forever, "date", run_date=datetime.now(UTC), id="forever")
    # Fires again while its first run still runs: the second is skipped (max_instances=1).
    scheduler.add_job(
        wait_for, "interval", hours=1, next_run_time=datetime.now(UTC), id="overlap",
        args=["overlap"],
    )  # fmt: skip
    for name in ("forever", "overlap"):
        await asyncio.wait_for(started[name].wait(), 20)
    scheduler.modify_job("overlap", next_run_time=datetime.now(UTC))

    async def skipped() -> float:
        return metric_counts(await scrape(service))[0].get("skipped", 0)

    await poll_async(skipped, 20.0, "the overlapping run skipped")
    for name in ("slow_ok", "slow_fail", "overlap"):
        gates[name].set()
    await poll_async(
        lambda: tracker.wait_idle() and len(tracker.running) == 1, 20.0, "three runs ending"
    )
    # A normal shutdown: AsyncIOExecutor cancels the run still in flight.
    scheduler.shutdown()
    await poll_async(lambda: tracker.wait_idle() and not tracker.running, 20.0, "the cancelled run")
    sweep_now(tracker)
    assert log_lines == ["ok"]


async def scrape(app: Starlette) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        resp = await client.get("/metrics")
    assert resp.status_code == 200
    return resp.text


def metric_counts(exposition: str) -> tuple[dict[str, float], dict[str, float]]:
    """(cron_jobs_total by status, cron_job_consecutive_failures) for JOB_TYPE."""
    by_status = metric_reader.series(exposition, "cron_jobs_total", job_type=JOB_TYPE)
    counts = {attributes["status"]: v for attributes, v in by_status}
    consecutive = metric_reader.series(
        exposition, "cron_job_consecutive_failures", job_type=JOB_TYPE
    )
    return counts, ({"value": consecutive[-1][1]} if consecutive else {})


def admin_cards(html: str) -> dict[str, int]:
    cards = re.findall(r'<div class="stat[^"]*"><b>(\d+)</b><span>([^<]+)</span></div>', html)
    return {label.replace(" ", "_"): int(n) for n, label in cards}


def promtool_counts(
    counts: dict[str, float], consecutive: float, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """Evaluate cron.yml's alert expressions and a by-status query on the same series."""
    rules = yaml.safe_load(CRON_RULES.read_text())["groups"][0]["rules"]
    expr = {r["alert"]: r["expr"] for r in rules if "alert" in r}
    labels = f'job="{SERVICE}", instance="i", job_type="{JOB_TYPE}"'
    # An OpenTelemetry counter series is born at its first increment, already at its value.
    series = [
        {"series": f'cron_jobs_total{{{labels}, status="{s}"}}', "values": f"{int(v)}x20"}
        for s, v in counts.items()
    ]
    series.append(
        {"series": f"cron_job_consecutive_failures{{{labels}}}", "values": f"{int(consecutive)}x20"}
    )
    by_status = [
        {"labels": f'{{status="{s}"}}', "value": int(v)} for s, v in sorted(counts.items()) if v
    ]
    group = f'{{job="{SERVICE}", job_type="{JOB_TYPE}"}}'
    test = {
        "rule_files": [str(CRON_RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": "sum by (status) (cron_jobs_total)",
                        "eval_time": "10m",
                        "exp_samples": by_status,
                    },
                    {
                        "expr": expr["CronJobTimedOut"],
                        "eval_time": "10m",
                        "exp_samples": [{"labels": group, "value": EXPECTED["timed_out"]}],
                    },
                    {
                        "expr": expr["CronJobMissed"],
                        "eval_time": "10m",
                        "exp_samples": [{"labels": group, "value": EXPECTED["missed"]}],
                    },
                    # One failure is under CronJobFailures' threshold, and the cancelled run
                    # did not add a consecutive failure.
                    {"expr": expr["CronJobFailures"], "eval_time": "10m", "exp_samples": []},
                    {
                        "expr": expr["CronJobConsecutiveFailures"],
                        "eval_time": "10m",
                        "exp_samples": [],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "lifecycle_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True)


async def test_every_view_counts_the_same_runs(
    capture: Capture, rest_url: str, tmp_path: Path
) -> None:
    api = f"{rest_url}/api/v1"
    shipper = HistoryShipper(HistorySettings(url=api, token=TOKEN, flush_interval_s=0.05))
    clock = SteppedClock()
    scheduler = AsyncIOScheduler()
    tracker = track_scheduler(
        scheduler,
        job_type=lambda job: JOB_TYPE,
        max_runtime=30,
        grace=3600,  # only APScheduler's own misfire report makes "late" missed
        sweep_interval=3600,  # sweeps happen when the test asks for them
        shipper=shipper,
        clock=clock,
    )
    service = instrument_app(Starlette())
    try:
        await drive_runs(tracker, scheduler, clock, service)
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)
        tracker.shutdown()
    assert shipper.flush(20)
    # The hourly job's monitor reached this test's rest_service before it stops (a pending
    # registration would retry, and log, for the rest of the test session).
    registrar = registrar_for(shipper)
    assert registrar.wait_idle(20)
    assert registrar.stats.get("registered") == 1 and "rejected" not in registrar.stats

    # 1. The service's /metrics.
    counts, consecutive = metric_counts(await scrape(service))
    assert {s: counts.get(s, 0) for s in RUN_STATUSES} == EXPECTED
    assert consecutive == {"value": 1}  # boom and slow_fail: one failure each; none after

    # 2. The rest_service API: stats, and each ?status= filter.
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as client:
        stats = (await client.get("/job-executions/stats", params={"hours": 24})).json()
        for status, n in EXPECTED.items():
            assert stats[status] == n, (status, stats)
            assert stats["by_type"][JOB_TYPE][status] == n
            rows = (
                await client.get("/job-executions", params={"status": status, "hours": 24})
            ).json()
            assert len(rows) == n, (status, rows)
        assert stats["running"] == 0 and stats["total"] == sum(EXPECTED.values())
        rows = (await client.get("/job-executions", params={"hours": 24, "limit": 100})).json()
    by_job = {r["job_id"]: r for r in rows if not r["run_id"].startswith(("missed", "skipped"))}
    assert by_job["slow_fail"]["status"] == "timed_out"
    assert "failed after its max runtime" in by_job["slow_fail"]["error"]  # outcome kept
    assert by_job["slow_ok"]["status"] == "timed_out" and by_job["slow_ok"]["finished_at"]
    assert by_job["forever"]["status"] == "cancelled"
    assert "CancelledError" in by_job["forever"]["error"]

    # 3. The admin jobs page's cards.
    with httpx.Client(base_url=rest_url, timeout=30) as browser:
        form = browser.get("/admin/login")
        nonce = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
        assert nonce, form.text
        login = browser.post(
            "/admin/login",
            data={"token": TOKEN, "login_csrf": nonce.group(1), "next": "/admin/jobs"},
        )
        assert login.status_code == 303, login.text
        page = browser.get("/admin/jobs")
    assert page.status_code == 200
    cards = admin_cards(page.text)
    assert {s: cards[s] for s in EXPECTED} == EXPECTED, cards

    # 4. Prometheus' evaluation of the alert expressions over the same series.
    out = promtool_counts(counts, consecutive["value"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr

    # 5. The log: one ERROR line per failure, "job started" before the job's own line.
    lines = capture.json_lines()
    errors = [ln for ln in lines if ln.get("level") in ("error", "ERROR", "critical")]
    assert sorted(ln["event"] for ln in errors) == ["job failed", "job failed"], errors
    assert not any("raised an exception" in str(ln.get("event")) for ln in lines)
    events = [ln["event"] for ln in lines]
    own = events.index("the job's own line")
    assert "job started" in events[:own]
    started_ok = next(
        ln for ln in lines if ln["event"] == "job started" and ln.get("job_id") == "ok"
    )
    assert started_ok["correlation_id"] == lines[own]["correlation_id"]
    cancelled = [ln for ln in lines if ln["event"] == "job cancelled"]
    assert len(cancelled) == 1 and cancelled[0]["level"] in ("info", "INFO")


def test_the_lifecycle_table_is_the_code() -> None:
    """docs/job-lifecycle.md lists every status the code knows, and only alerts that exist."""
    from otel_assist.metrics.instruments import JOB_STATUSES
    from rest_service.models import JobStatus

    doc = (REPO / "docs" / "job-lifecycle.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+)` \|(.*)$", doc, flags=re.MULTILINE)
    assert {status for status, _ in rows} == {s.value for s in JobStatus}
    assert set(RUN_STATUSES) == JOB_STATUSES
    alerts = {r["alert"] for r in yaml.safe_load(CRON_RULES.read_text())["groups"][0]["rules"]}
    named = set(re.findall(r"`(Cron[A-Za-z]+)`", doc))
    assert named and named <= alerts, named - alerts
