"""``otel-assist demo`` end to end, as a subprocess on embedded defaults (fakeredis TCP
server, SQLite): history rows reach rest_service, /metrics carries the catalog with real
values, log lines land in the log file with correlation ids, and a stop flushes history."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests import metric_reader
from tests.demo_process import start_demo
from tests.polling import poll
from tests.servers import free_port, http_ok

#: Catalog metrics the demo's workload must move (Prometheus sample names).
MOVING = (
    "llm_requests_total",
    "gen_ai_client_operation_duration_seconds_count",
    "gen_ai_client_token_usage_count",
    "tool_calls_total",
    "messages_processed_total",
    "memory_operations_total",
    "rag_search_duration_seconds_count",
    "queue_messages_total",
    "queue_wait_duration_seconds_count",
    "queue_processing_duration_seconds_count",
    "db_client_operation_duration_seconds_count",
    "cron_jobs_total",
    "cron_job_duration_seconds_count",
    "http_server_request_duration_seconds_count",
    "history_events_total",
    "log_records_total",
)


def db_rows(state_dir: Path) -> tuple[int, int, dict[str, int]]:
    con = sqlite3.connect(state_dir / "rest_service.sqlite3")
    try:
        pushes = con.execute(
            "select count(*) from queue_message_logs where direction = 'push'"
        ).fetchone()[0]
        pops = con.execute(
            "select count(*) from queue_message_logs where direction = 'pop'"
        ).fetchone()[0]
        jobs = dict(con.execute("select status, count(*) from job_executions group by status"))
    finally:
        con.close()
    return int(pushes), int(pops), {str(k): int(v) for k, v in jobs.items()}


def final_line(stdout: str) -> dict[str, int]:
    """pushed/popped from the last summary line (non-TTY mode prints one every few s)."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("[demo ")]
    assert lines, stdout
    found = dict(re.findall(r"\b(pushed|popped)=(\d+)", lines[-1]))
    return {k: int(v) for k, v in found.items()}


def test_demo_produces_history_metrics_and_logs(tmp_path: Path) -> None:
    # No --duration: on a loaded machine the checks below may take longer than a fixed run;
    # the duration path is covered by the TTY, Postgres/Redis and external tests.
    demo = start_demo(tmp_path, "--rate", "3", "--seed", "11")
    try:
        api = demo.api

        # History rows through the API while it runs, on both queues; the assistant's reply
        # carries the correlation_id of the user message it answers.
        def round_trips() -> tuple[list[dict], set[str]] | None:
            rows = api.get("/queue-stats/messages", params={"limit": 1000}).json()
            pushed = [m for m in rows if m["direction"] == "push"]
            asked = {m["correlation_id"] for m in pushed if m["queue_name"] == "to_secretary"}
            replied = {
                m["correlation_id"]
                for m in pushed
                if m["queue_name"] == "to_telegram" and m["source"] == "assistant"
            }
            return (pushed, asked) if asked & replied else None

        messages, asked = poll(round_trips, 60, "a user message and its reply in history")
        runs = poll(
            lambda: api.get("/job-executions", params={"hours": 1}).json(), 60, "job history"
        )
        assert {r["job_type"] for r in runs} <= {
            "reminder",
            "memory_extraction",
            "update_reminders",
        }
        assert all(r["correlation_id"] for r in runs)
        users = {m["user_id"] for m in messages if m["user_id"] is not None}
        facts = poll(
            lambda: [f for u in users for f in api.get(f"/memories/user/{u}").json()],
            60,
            "remembered facts",
        )
        assert all(f["content"] for f in facts)

        metrics = metric_reader.totals(httpx.get(demo.base_url + "/metrics", timeout=10).text)
        still_zero = [name for name in MOVING if metrics.get(name, 0) <= 0]
        # Some series need a cron run or a few more messages; give them the rest of the run.
        if still_zero:
            metrics = poll(
                lambda: (
                    m
                    if all(
                        (m := metric_reader.totals(httpx.get(demo.base_url + "/metrics").text)).get(
                            n, 0
                        )
                        > 0
                        for n in MOVING
                    )
                    else None
                ),
                60,
                f"non-zero {still_zero}",
            )
        assert metrics["queue_length"] >= 0
    finally:
        code = demo.stop(timeout=120)
    assert code == 0, demo.stdout
    out = demo.stdout
    assert "/admin" in out and "/metrics" in out and "/docs" in out
    assert "history flushed into rest_service: all events stored" in out, out

    # Everything the demo pushed is in the history store, exactly once per push.
    pushes, pops, jobs = db_rows(demo.state_dir)
    counted = final_line(out)
    assert pushes == counted["pushed"], (pushes, counted)
    assert pops == counted["popped"], (pops, counted)
    assert sum(jobs.values()) >= len(runs) >= 1, jobs

    # The demo's log lines went to its log file (not the terminal), as JSON with context.
    log_lines = [
        json.loads(line)
        for line in (demo.state_dir / "demo.log").read_text().splitlines()
        if line.startswith("{")
    ]
    components = {rec.get("component") for rec in log_lines}
    assert {"telegram_bot", "assistant", "telegram_sender", "cron"} <= components
    assert all(rec["service"] == "otel-assist-demo" for rec in log_lines)
    llm = [rec for rec in log_lines if rec.get("event_type") == "llm_call"]
    assert llm and all(rec.get("correlation_id") for rec in llm)
    assert asked & {rec.get("correlation_id") for rec in log_lines}
    assert '"event_type"' not in out  # the terminal shows the summary, not log lines


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_demo_stops_cleanly_on_signal_and_flushes(tmp_path: Path, sig: signal.Signals) -> None:
    demo = start_demo(tmp_path, "--rate", "5", "--seed", "3")
    poll(
        lambda: demo.api.get("/queue-stats/messages", params={"limit": 5}).json(),
        60,
        "first history rows",
    )
    demo.proc.send_signal(sig)  # Ctrl-C, or a process manager
    code = demo.wait(120)
    assert code == 0, demo.stdout
    assert "history flushed into rest_service: all events stored" in demo.stdout
    pushes, pops, _ = db_rows(demo.state_dir)
    counted = final_line(demo.stdout)
    assert pushes == counted["pushed"] > 0
    assert pops == counted["popped"] > 0


def test_demo_uses_postgres_and_redis_when_configured(
    tmp_path: Path, postgres, redis_server
) -> None:
    """DATABASE_URL and REDIS_URL replace the embedded defaults (no fakeredis, no SQLite)."""
    import redis

    url = postgres.create_database("demo_external")
    real_redis = redis.Redis.from_url(redis_server.url.replace("/0", "/7"))
    real_redis.flushdb()
    before = real_redis.info("commandstats").get("cmdstat_lpush", {}).get("calls", 0)
    demo = start_demo(
        tmp_path,
        "--duration",
        "12",
        "--rate",
        "4",
        env={"DATABASE_URL": url, "REDIS_URL": redis_server.url.replace("/0", "/7")},
    )
    assert demo.wait(120) == 0, demo.stdout
    out = demo.stdout
    assert "(DATABASE_URL)" in out and "(REDIS_URL)" in out
    assert postgres.password not in out  # the banner masks the password
    assert "fakeredis" not in out
    assert not (demo.state_dir / "rest_service.sqlite3").exists()
    assert "history flushed into rest_service: all events stored" in out
    after = real_redis.info("commandstats").get("cmdstat_lpush", {}).get("calls", 0)
    counted = final_line(out)
    assert after - before >= counted["pushed"] > 0
    pushes = int(
        postgres.psql(
            "select count(*) from queue_message_logs where direction = 'push'",
            database="demo_external",
        ).strip()
    )
    runs = int(postgres.psql("select count(*) from job_executions", database="demo_external"))
    assert pushes == counted["pushed"]
    assert runs >= 2


def test_demo_on_a_terminal_redraws_the_summary_in_place(tmp_path: Path) -> None:
    """On a TTY: ANSI redraws of one block (no log lines in between), no summary lines."""
    master, slave = pty.openpty()
    demo = start_demo(tmp_path, "--duration", "6", "--seed", "1", stdout=slave)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the pty
                    return
                if not data:
                    return
                chunks.append(data)
            elif demo.proc.poll() is not None:
                return

    reader = threading.Thread(target=drain)
    reader.start()
    assert demo.wait(120) == 0
    reader.join(10)
    os.close(master)
    screen = b"".join(chunks).decode(errors="replace")
    redraws = re.findall(r"\x1b\[(\d+)F\x1b\[J", screen)
    assert len(redraws) >= 3, screen  # refreshed about every second
    assert len(set(redraws)) == 1  # always the same block height: redrawn in place
    assert "queue           length    oldest   pushed   popped" in screen
    assert "stopped after" in screen
    assert "[demo " not in screen  # the line mode is for pipes only
    assert '"event_type"' not in screen and "event_type=" not in screen


def test_demo_refuses_a_taken_port_with_a_clear_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("otel-assist")),
                "demo",
                "--port",
                str(port),
                "--state-dir",
                str(tmp_path / "state"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "REST_SERVICE_TOKEN": "t0ken-for-port-test"},
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stdout
    assert "pass --port" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_demo_ships_to_an_external_rest_service(tmp_path: Path) -> None:
    """OTEL_ASSIST_HISTORY_URL (the compose demo profile): no local server, history and
    memory calls go to the rest_service that runs elsewhere (given by its root URL)."""
    port = free_port()
    token = "external-rest-token-91"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "REST_SERVICE_TOKEN": token,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'external.sqlite3'}",
        "MIGRATE_ON_START": "true",
        "OTEL_LOGS_EXPORTER": "none",
    }
    log = (tmp_path / "rest.log").open("wb")
    rest = subprocess.Popen(
        [str(Path(sys.executable).with_name("rest-service")), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        poll(lambda: http_ok(f"http://127.0.0.1:{port}/ready"), 60, "external rest_service")
        demo = start_demo(
            tmp_path / "demo",
            "--duration",
            "10",
            "--rate",
            "4",
            token="",
            env={
                "OTEL_ASSIST_HISTORY_URL": f"http://127.0.0.1:{port}",
                "OTEL_ASSIST_HISTORY_TOKEN": token,
            },
            wait_ready=False,
        )
        assert demo.wait(120) == 0, demo.stdout
        out = demo.stdout
        assert f"Admin pages  http://127.0.0.1:{port}/admin" in out
        assert "history flushed into rest_service: all events stored" in out
        assert not (demo.state_dir / "rest_service.sqlite3").exists()
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
        )
        rows = api.get("/queue-stats/messages", params={"limit": 1000}).json()
        assert len([r for r in rows if r["direction"] == "push"]) == final_line(out)["pushed"]
        assert api.get("/job-executions", params={"hours": 1}).json()
    finally:
        rest.terminate()
        rest.wait(30)
        log.close()


def test_demo_exports_logs_and_metrics_over_otlp_when_a_collector_is_set(tmp_path: Path) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT: log records and metrics also leave over OTLP/HTTP (here to
    a local OTLP stand-in), flushed on stop; never a trace."""
    from tests.otlp_receiver import OTLPReceiver

    with OTLPReceiver() as collector:
        demo = start_demo(
            tmp_path,
            "--duration",
            "8",
            "--rate",
            "4",
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint},
        )
        assert demo.wait(120) == 0, demo.stdout
        assert f"OTLP to {collector.endpoint}" in demo.stdout
        records = collector.records()
        assert records
        assert {r["resource"]["service.name"] for r in records} == {"otel-assist-demo"}
        llm = [r for r in records if r.get("event_type") == "llm_call"]
        assert llm and all(r.get("correlation_id") and r.get("component") for r in llm)
        assert {"llm_requests", "queue_messages", "messages_processed"} <= collector.metric_names
        assert "/v1/traces" not in collector.paths
