"""A service run with ``uvicorn --workers 3``, scraped by the real Prometheus: the counter
Prometheus stores equals the number of requests sent, and stays so when the supervisor
replaces a worker that died.

Without otel_assist.metrics.workers each scrape reaches one worker, and Prometheus stores
that worker's count (set OTEL_ASSIST_METRICS_DIR=off to see it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.polling import poll
from tests.servers import Prometheus, free_port, start_prometheus

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ROUTE = 'http_route="/items/{item_id}"'
QUERY = "sum(http_server_request_duration_seconds_count{" + ROUTE + "})"


def _children(pid: int) -> set[int]:
    """uvicorn's worker processes (its multiprocessing children that are not the
    resource tracker, and not zombies waiting to be reaped)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
                state = Path(f"/proc/{child}/stat").read_text().split(") ", 1)[1][0]
            except (OSError, IndexError):
                continue
            if b"spawn_main" in cmdline and state != "Z":
                found.add(int(child))
    return found


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_ASSIST_LOG_FORMAT": "json",
            "TMPDIR": str(tmp_path),  # the automatic snapshot directory lands here
        }
    )
    proc = subprocess.Popen(
        [str(VENV_BIN / "uvicorn"), "tests.core.apps.configured_app:app", "--workers", "3",
         "--port", str(port), "--no-access-log"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        poll(lambda: len(_children(proc.pid)) >= 3 and _up(port), 60, "3 workers")
        yield port, proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def prometheus(
    tmp_path: Path, workers: tuple[int, subprocess.Popen[bytes]]
) -> Iterator[Prometheus]:
    port, _ = workers
    config = (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: service\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
    prom = start_prometheus(tmp_path / "prometheus", config)
    yield prom
    prom.process.stop()


def _stored(prom: Prometheus) -> float | None:
    answer = httpx.get(f"{prom.url}/api/v1/query", params={"query": QUERY}, timeout=5).json()
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _send(port: int, first: int, count: int) -> None:
    # A new connection per request, so the kernel spreads them over the workers.
    for i in range(first, first + count):
        assert httpx.get(f"http://127.0.0.1:{port}/items/{i}", timeout=10).status_code == 200


def _snapshots(
    directory: Path, sample: str = "http_server_request_duration_seconds_count"
) -> dict[int, float]:
    """Each worker's snapshot on disk: its total of ``sample`` (summed over its labels)."""
    totals: dict[int, float] = {}
    for path in directory.rglob("*.snapshot.json"):
        snapshot = json.loads(path.read_bytes())
        totals[snapshot["pid"]] = sum(
            value
            for _name, _kind, _doc, samples in snapshot["families"]
            for name, _labels, value in samples
            if name == sample
        )
    return totals


def _served_by(tmp_path: Path) -> int:
    return len(list((tmp_path / "otel-assist-metrics").glob("*/*.snapshot.json")))


def test_prometheus_stores_every_workers_requests_across_a_worker_restart(
    workers: tuple[int, subprocess.Popen[bytes]], prometheus: Prometheus, tmp_path: Path
) -> None:
    port, proc = workers

    def state() -> str:
        return f"Prometheus stores {_stored(prometheus)}; snapshots hold {_snapshots(tmp_path)}"

    _send(port, 0, 300)
    poll(lambda: _stored(prometheus) == 300, 45, "Prometheus to store 300", describe=state)
    assert _served_by(tmp_path) == 3  # three workers, one snapshot each

    # SIGKILL one worker: the supervisor starts a new one; the dead worker's last snapshot
    # (current: Prometheus already stored its count) stays in the sum.
    victim = min(_children(proc.pid))
    os.kill(victim, signal.SIGKILL)
    poll(
        lambda: victim not in _children(proc.pid) and len(_children(proc.pid)) >= 3,
        60,
        "the supervisor to replace the killed worker",
    )
    poll(lambda: _up(port), 30, "the service")
    _send(port, 300, 150)
    poll(lambda: _stored(prometheus) == 450, 45, "Prometheus to store 450", describe=state)
    # the series never went down: no counter reset seen by Prometheus
    resets = httpx.get(
        f"{prometheus.url}/api/v1/query",
        params={"query": f"resets(({QUERY})[5m:1s])"},
        timeout=5,
    ).json()["data"]["result"]
    assert resets and float(resets[0]["value"][1]) == 0


def test_a_scraped_count_is_on_disk_before_the_scrape_is_answered(tmp_path: Path) -> None:
    """What a worker served to a scrape is in its snapshot at once, not up to a second
    later: a SIGKILL right after the scrape cannot take the sum below what Prometheus
    stored (which it would read as a counter reset)."""
    from prometheus_client import CollectorRegistry, Counter

    from otel_assist.metrics.workers import WorkerMetricsStore

    registry = CollectorRegistry()
    requests = Counter("requests", "d", registry=registry)
    store = WorkerMetricsStore(tmp_path, registry=registry, interval_s=3600.0)
    store.start()  # the first snapshot: 0 requests; the next timed one is an hour away
    try:
        requests.inc(7)
        assert b"requests_total 7.0" in store.exposition()
        assert _snapshots(tmp_path, "requests_total") == {store.pid: 7.0}
    finally:
        store.stop()


def test_merge_rules() -> None:
    from otel_assist.metrics.workers import merge, render

    own = [
        ("requests", "counter", "d", [("requests_total", (("route", "/a"),), 2.0),
                                       ("requests_created", (("route", "/a"),), 50.0)]),
        ("inflight", "gauge", "d", [("inflight", (), 1.0)]),
        ("process_cpu_seconds", "counter", "d", [("process_cpu_seconds_total", (), 9.0)]),
    ]  # fmt: skip
    live = [
        ["requests", "counter", "d", [["requests_total", [["route", "/a"]], 3.0],
                                      ["requests_created", [["route", "/a"]], 40.0]]],
        ["inflight", "gauge", "d", [["inflight", [], 4.0]]],
        ["process_cpu_seconds", "counter", "d", [["process_cpu_seconds_total", [], 100.0]]],
    ]  # fmt: skip
    dead = [
        ["requests", "counter", "d", [["requests_total", [["route", "/a"]], 5.0],
                                      ["requests_total", [["route", "/b"]], 1.0]]],
        ["inflight", "gauge", "d", [["inflight", [], 7.0]]],
    ]  # fmt: skip
    merged = {
        name: values for name, _kind, _doc, values in merge(own, [(True, live), (False, dead)])
    }
    assert merged["requests"][("requests_total", (("route", "/a"),))] == 10.0  # 2 + 3 + 5 (dead)
    assert merged["requests"][("requests_total", (("route", "/b"),))] == 1.0
    assert merged["requests"][("requests_created", (("route", "/a"),))] == 40.0  # earliest
    assert merged["inflight"][("inflight", ())] == 5.0  # live gauges only: 1 + 4
    assert merged["process_cpu_seconds"][("process_cpu_seconds_total", ())] == 9.0  # own only
    text = render(merge(own, [(True, live)])).decode()
    assert text.count("# TYPE requests_total counter") == 1
    assert 'requests_total{route="/a"} 5.0' in text
