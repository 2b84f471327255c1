"""Every file under examples/ runs as documented, against real Redis and a real uvicorn.

The docs include these files verbatim (tests/test_docs.py checks that), so what a reader
copies is what ran here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests import metric_reader, servers
from tests.polling import poll

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "REDIS_URL"))}
    # No Collector in these tests: point OTLP at a port nobody listens on, as on a newcomer's
    # laptop, so nothing reaches (or depends on) a Collector another test started.
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{servers.free_port()}"
    env["OTEL_ASSIST_LOG_FORMAT"] = "json"
    env.update(extra)
    return env


def _json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_every_example_is_tested_here() -> None:
    source = Path(__file__).read_text()
    for path in EXAMPLES.glob("*.py"):
        assert f'"{path.name}"' in source, f"{path.name} is not run by this module"


def test_fastapi_service_under_uvicorn(tmp_path: Path) -> None:
    port = servers.free_port()
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.fastapi_service:app", "--port", str(port)],
            cwd=ROOT,
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    example = "fastapi_service.py"
    try:
        base = f"http://127.0.0.1:{port}"
        poll(lambda: servers.port_open(port), 60, f"{example} listening")
        request = urllib.request.Request(
            f"{base}/hello/ada", headers={"X-Correlation-ID": "example-1"}
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
            assert resp.headers["X-Correlation-ID"] == "example-1"
            body = json.loads(resp.read())
        assert body == {"greeting": "hello ada", "correlation_id": "example-1"}
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
            exposition = resp.read().decode()
        counts = metric_reader.series(
            exposition,
            "http_server_request_duration_seconds_count",
            http_route="/hello/{name}",
            http_request_method="GET",
        )
        assert [v for _, v in counts] == [1.0], exposition[:2000]
        poll(
            lambda: any(
                r.get("event") == "greeting" and r.get("correlation_id") == "example-1"
                for r in _json_lines(log_path.read_text(errors="replace"))
            ),
            10,
            "the greeting's JSON log line",
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    # uvicorn re-raises SIGTERM after its graceful shutdown, so -15 is a clean stop too.
    assert proc.returncode in (0, -signal.SIGTERM), log_path.read_text(errors="replace")[-3000:]
    assert "Application shutdown complete." in log_path.read_text(errors="replace")


def test_queue_worker_against_real_redis(redis_server: servers.Redis) -> None:
    queue = f"example_{uuid.uuid4().hex[:8]}"
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / "queue_worker.py"), "--messages", "4", "--queue", queue],
        env=_env(REDIS_URL=redis_server.url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    assert "handled 4 of 4 messages" in run.stdout
    records = _json_lines(run.stdout)
    pushed = {r["number"]: r["correlation_id"] for r in records if r["event"] == "message pushed"}
    handled = {
        int(r["text"].split()[1]): r["correlation_id"]
        for r in records
        if r["event"] == "message handled"
    }
    assert pushed == handled, (pushed, handled)  # the consumer sees the producer's id
    assert len(set(pushed.values())) == 4  # one correlation_id per message


def test_scheduler_tracks_every_run() -> None:
    example = "scheduler.py"
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / example), "--seconds", "2.5"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    records = _json_lines(run.stdout)
    ends = [r for r in records if r.get("event_type") == "job_end"]
    assert ends, run.stdout[-3000:]
    for end in ends:
        assert end["job_type"] == "reminder" and end["job_id"] == "reminder_42"
        sent = [
            r
            for r in records
            if r["event"] == "reminder sent" and r["correlation_id"] == end["correlation_id"]
        ]
        assert len(sent) == 1, "the job's own line carries its run's correlation_id"


def test_otel_capture_example_passes_under_pytest(tmp_path: Path) -> None:
    example = "test_fastapi_service.py"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(EXAMPLES / example), "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert "1 passed" in run.stdout
