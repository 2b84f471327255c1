"""The demo's cron monitors (otel_assist_demo/cron.py): a subprocess check-in job over
HTTP, and a tracked scheduler stopped mid-demo whose next run rest_service marks missed,
visible on the admin Monitors page and in /metrics while the demo runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import metric_reader
from tests.demo_process import start_demo
from tests.polling import poll


@pytest.mark.timeout(300)
def test_demo_shows_a_checkin_job_and_a_missed_run(tmp_path: Path) -> None:
    demo = start_demo(tmp_path, "--rate", "1", "--seed", "5")
    try:
        api = demo.api

        def monitors() -> dict[str, Any]:
            r = api.get("/monitors")
            return {m["slug"]: m for m in r.json()} if r.status_code == 200 else {}

        # minutely_digest: next minute + 10 s grace + one 15 s sweep after its first run
        missed = poll(
            lambda: monitors().get("minutely_digest", {}).get("state") == "missed",
            200,
            "the stopped scheduler's run to be marked missed",
        )
        assert missed
        mons = monitors()
        export = mons["nightly-export"]
        assert export["last_checkin"] is not None
        assert export["last_checkin"]["status"] in ("completed", "failed")
        runs = api.get("/job-executions", params={"limit": 1000}).json()
        digest = [r for r in runs if r["job_id"] == "minutely_digest"]
        assert "missed" in {r["status"] for r in digest}
        assert "completed" in {r["status"] for r in digest}
        checkins = [r for r in runs if r["job_id"] == "nightly-export"]
        assert checkins and all(r["run_id"].startswith("ci-") for r in checkins)
        text = httpx.get(demo.base_url + "/metrics", timeout=10).text
        status = metric_reader.series(text, "cron_monitor_status", monitor="minutely_digest")
        assert [v for _, v in status] == [2.0], text[-2000:]
    finally:
        code = demo.stop(timeout=120)
    assert code == 0, demo.stdout
