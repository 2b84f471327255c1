"""A down or black-holing OTLP endpoint costs bounded, counted records, never the caller."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_assist import telemetry
from tests import metric_reader
from tests.servers import free_port


@pytest.fixture
def black_hole() -> Iterator[str]:
    """Accepts TCP connections and never answers (a hung Collector)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def configure_against(endpoint: str) -> tuple[telemetry.Telemetry, InMemoryMetricReader]:
    current = telemetry.current()
    if current is not None:
        current.shutdown()
    reader = InMemoryMetricReader()
    tel = telemetry.configure(
        "fault_test",
        log_stream=io.StringIO(),
        metric_readers=[reader],
        otlp_endpoint=endpoint,
        logs_exporters=("otlp",),
        metrics_exporters=(),
        log_queue_size=200,
        log_batch_size=50,
        log_export_interval_ms=50,
        export_timeout_ms=500,
        log_format="json",
    )
    return tel, reader


def dropped(reader: InMemoryMetricReader) -> dict[str, float]:
    series = metric_reader.series(reader, "otel_assist.log_records.dropped")
    return {str(attributes["reason"]): v for attributes, v in series}


async def log_storm_with_heartbeat(n: int) -> tuple[float, float]:
    """Log n lines from the event loop; return (max heartbeat gap, worst single call)."""
    log = structlog.get_logger()
    gaps: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    hb = asyncio.create_task(heartbeat())
    worst = 0.0
    for i in range(n):
        start = time.perf_counter()
        log.info("storm", i=i)
        worst = max(worst, time.perf_counter() - start)
        if i % 100 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    done.set()
    await hb
    return max(gaps), worst


@pytest.mark.parametrize("kind", ["down", "black_hole"])
async def test_endpoint_down_or_hung_costs_counted_records_only(
    kind: str, request: pytest.FixtureRequest
) -> None:
    endpoint = (
        f"http://127.0.0.1:{free_port()}"
        if kind == "down"
        else request.getfixturevalue("black_hole")
    )
    tel, reader = configure_against(endpoint)
    try:
        max_gap, worst_call = await log_storm_with_heartbeat(5000)
        # The loop never stalls on export. A blocking export would stall it for the whole
        # export timeout (0.5 s here); the bounds leave room for a busy machine's hiccups.
        assert max_gap < 0.35, max_gap
        assert worst_call < 0.2, worst_call
        # Memory is bounded by the queue size, never by the outage.
        assert len(tel.log_queue._items) <= 200
        tel.force_flush(timeout_s=3)
        counts = dropped(reader)
        assert counts["queue_full"] + counts["export_failed"] > 0
        assert counts["queue_full"] + counts["export_failed"] + tel.log_queue.exported <= 5000
        assert tel.log_queue.exported == 0
    finally:
        tel.shutdown(timeout_s=2)


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_closed_output_never_raises_into_the_caller(log_format: str) -> None:
    import logging

    current = telemetry.current()
    if current is not None:
        current.shutdown()
    stream = io.StringIO()
    tel = telemetry.configure(
        "closed_out",
        log_stream=stream,
        logs_exporters=(),
        metrics_exporters=(),
        log_format=log_format,
    )
    try:
        stream.close()
        structlog.get_logger().info("after close")
        logging.getLogger("uvicorn.error").error("stdlib after close")
    finally:
        tel.shutdown()
