"""A real uvicorn process serving an instrumented app, with a local OTLP/HTTP receiver as a
stand-in for the Collector: stdout JSON lines and OTLP log records carry the request's
correlation_id; the app behaves the same under ``opentelemetry-instrument``; no span is
ever exported."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests import metric_reader
from tests.otlp_receiver import OTLPReceiver
from tests.polling import poll
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as r:
        yield r


def start_server(
    argv: list[str], receiver: OTLPReceiver, port: int, **extra_env: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OTEL_SERVICE_NAME": "core_test_app",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_METRICS_EXPORTER": "prometheus,otlp",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_ASSIST_LOG_EXPORT_INTERVAL": "100",
        "OTEL_ASSIST_LOG_FORMAT": "json",
        "OTEL_ASSIST_ACCESS_LOG": "true",
        **extra_env,
    }
    proc = subprocess.Popen(
        [*argv, "--port", str(port), "--loop", "uvloop", "--http", "httptools"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        poll(lambda: _up(port), 30, "uvicorn")
    except Exception:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"server did not start:\n{out.decode()}\n{err.decode()}") from None
    return proc


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def stop(proc: subprocess.Popen[bytes]) -> list[dict[str, object]]:
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    lines = []
    for raw in out.splitlines():
        try:
            lines.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            raise AssertionError(f"stdout line is not JSON: {raw!r}") from None
    return lines


def exercise(port: int, receiver: OTLPReceiver) -> list[dict[str, object]]:
    base = f"http://127.0.0.1:{port}"
    ok = httpx.get(f"{base}/items/5", headers={"baggage": "correlation_id=e2e-cid-1"})
    assert ok.status_code == 200
    assert ok.headers["x-correlation-id"] == "e2e-cid-1"
    crash = httpx.get(f"{base}/boom", headers={"X-Correlation-ID": "e2e-cid-500"})
    assert crash.status_code == 500
    assert crash.headers["x-correlation-id"] == "e2e-cid-500"
    forged = "evil\r\nX-Injected: 1" + "A" * 300
    resp = httpx.get(f"{base}/items/6", headers={"X-Request-ID": forged.replace("\r\n", "%0D")})
    replaced = resp.headers["x-correlation-id"]
    assert replaced != forged and len(replaced) == 32
    metrics = httpx.get(f"{base}/metrics").text
    name = "http_server_request_duration_seconds_count"
    assert metric_reader.value(metrics, name, http_route="/items/{item_id}") >= 1
    assert "/items/5" not in metrics
    poll(lambda: len(receiver.records(correlation_id="e2e-cid-1")) >= 2, 15, "OTLP logs")
    poll(lambda: "http.server.request.duration" in receiver.metric_names, 15, "metrics")
    return [{"replaced": replaced}]


def check_outputs(lines: list[dict[str, object]], receiver: OTLPReceiver, replaced: str) -> None:
    mine = [line for line in lines if line.get("correlation_id") == "e2e-cid-1"]
    events = {line["event"] for line in mine}
    assert {"item loaded", "request"} <= events
    item_line = next(line for line in mine if line["event"] == "item loaded")
    assert item_line["user_id"] == 7 and item_line["service"] == "core_test_app"
    records = receiver.records(correlation_id="e2e-cid-1")
    assert {r["body"] for r in records} == {"item loaded", "request"}
    item = next(r for r in records if r["body"] == "item loaded")
    assert item["user_id"] == 7 and item["event_type"] == "request_in"
    assert item["resource"]["service.name"] == "core_test_app"
    assert set(item["resource"]) == {
        "service.name",
        "service.instance.id",
        "deployment.environment.name",
    }
    crash_records = receiver.records(correlation_id="e2e-cid-500")
    assert any(r.get("exception.type") == "RuntimeError" for r in crash_records)
    assert any(line.get("correlation_id") == replaced for line in lines)
    # exactly one record per call, whichever path: one "item loaded" per request
    assert len([r for r in records if r["body"] == "item loaded"]) == 1
    assert "/v1/traces" not in receiver.paths


def test_configured_app_under_uvicorn(receiver: OTLPReceiver) -> None:
    port = free_port()
    argv = [str(VENV_BIN / "uvicorn"), "tests.core.apps.configured_app:app"]
    proc = start_server(argv, receiver, port)
    try:
        replaced = exercise(port, receiver)[0]["replaced"]
    finally:
        lines = stop(proc)
    check_outputs(lines, receiver, str(replaced))


def test_unmodified_app_under_opentelemetry_instrument(receiver: OTLPReceiver) -> None:
    port = free_port()
    argv = [
        str(VENV_BIN / "opentelemetry-instrument"),
        str(VENV_BIN / "uvicorn"),
        "tests.core.apps.plain_app:app",
    ]
    proc = start_server(argv, receiver, port)
    try:
        replaced = exercise(port, receiver)[0]["replaced"]
    finally:
        lines = stop(proc)
    check_outputs(lines, receiver, str(replaced))
    time.sleep(0)  # keeps the two tests symmetrical for readers; nothing to wait for


def test_sigterm_shutdown_delivers_every_record(receiver: OTLPReceiver) -> None:
    """uvicorn ends a SIGTERM shutdown by raising the signal again with the default
    handler, so the process dies by it and atexit never runs: whatever waited for the
    next export interval (here, everything: the interval is a minute) and the shutdown
    lines themselves must leave before that. Every stdout line has its record, once."""
    port = free_port()
    argv = [str(VENV_BIN / "uvicorn"), "tests.core.apps.configured_app:app"]
    proc = start_server(argv, receiver, port, OTEL_ASSIST_LOG_EXPORT_INTERVAL="60000")
    try:
        for item in range(25):
            assert httpx.get(f"http://127.0.0.1:{port}/items/{item}").status_code == 200
    finally:
        lines = stop(proc)
    events = sorted(str(line["event"]) for line in lines)
    assert any("Finished server process" in event for event in events)
    assert sorted(str(r["body"]) for r in receiver.records()) == events
