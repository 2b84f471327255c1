"""An OTLP endpoint that goes away and comes back (issue 10 point 9a, issue 14 point 8).

While the bounded queue has room, records wait and are retried until the endpoint
returns: none is lost, none is sent twice. Only a full queue drops (the newest, counted).
The service says so once, with the endpoint and how to turn export off, stays quiet while
it lasts, and says once that it recovered. The endpoint here is a real OTLP/HTTP receiver
on a loopback port, stopped and started again on the same port.
"""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
import structlog
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otel_assist import telemetry
from tests.polling import poll
from tests.servers import free_port


class Receiver:
    """An OTLP/HTTP logs receiver on a fixed port that can be started and stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seqs: Counter[int] = Counter()
        self.bodies: list[str] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.status = 200

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.status == 200:
                    receiver.keep(ExportLogsServiceRequest.FromString(body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def keep(self, request: ExportLogsServiceRequest) -> None:
        with self.lock:
            for rl in request.resource_logs:
                for sl in rl.scope_logs:
                    for rec in sl.log_records:
                        self.bodies.append(rec.body.string_value)
                        for kv in rec.attributes:
                            if kv.key == "seq":
                                self.seqs[kv.value.int_value] += 1


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    try:
        yield r
    finally:
        r.stop()


def configure(port: int, queue_size: int) -> tuple[telemetry.Telemetry, io.StringIO]:
    current = telemetry.current()
    if current is not None:
        current.shutdown()
    stream = io.StringIO()
    tel = telemetry.configure(
        "outage_test",
        log_stream=stream,
        otlp_endpoint=f"http://127.0.0.1:{port}",
        logs_exporters=("otlp",),
        metrics_exporters=(),
        log_queue_size=queue_size,
        log_batch_size=50,
        log_export_interval_ms=50,
        export_timeout_ms=500,
        log_retry_max_backoff_ms=400,
        log_format="json",
    )
    return tel, stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().split("\n") if line]


def test_records_wait_for_the_endpoint_and_arrive_once(receiver: Receiver) -> None:
    tel, stream = configure(receiver.port, queue_size=5000)
    try:
        log = structlog.get_logger()
        for seq in range(1000):
            log.info("numbered", seq=seq)
        # Down for longer than the exporter's own retries (export timeout 0.5 s): the
        # code before the fix counted these export_failed and never sent them.
        poll(lambda: tel.log_queue.retries >= 3, 20, "retries while the endpoint is down")
        time.sleep(2)  # the outage itself, well past the exporter's 0.5 s timeout
        assert tel.log_queue.exported == 0
        receiver.start()
        poll(lambda: len(receiver.seqs) == 1000, 30, "every record after the endpoint returned")
        assert tel.force_flush(10)
    finally:
        tel.shutdown(timeout_s=5)
    assert set(receiver.seqs) == set(range(1000))
    duplicated = [seq for seq, n in receiver.seqs.items() if n > 1]
    assert duplicated == []
    assert tel.log_queue.dropped == {"queue_full": 0, "export_failed": 0}

    # One warning naming the endpoint and the switch, one recovery line, nothing else.
    own = [line for line in lines(stream) if line.get("logger") == "otel_assist.log_export"]
    assert [line["level"] for line in own] == ["warning", "info"], own
    assert f"127.0.0.1:{receiver.port}" in own[0]["event"]
    assert "OTEL_LOGS_EXPORTER=none" in own[0]["event"]
    assert "recovered" in own[1]["event"]
    text = stream.getvalue()
    assert "Failed to export" not in text and "Transient error" not in text
    # The warning itself waited and was delivered too.
    assert any("OTEL_LOGS_EXPORTER=none" in body for body in receiver.bodies)


def test_only_a_full_queue_drops_the_newest_counted(receiver: Receiver) -> None:
    tel, stream = configure(receiver.port, queue_size=100)
    try:
        log = structlog.get_logger()
        for seq in range(300):
            log.info("numbered", seq=seq)
        poll(lambda: tel.log_queue.retries >= 1, 20, "a failed export")
        receiver.start()
        assert tel.force_flush(20)
    finally:
        tel.shutdown(timeout_s=5)
    assert set(receiver.seqs) == set(range(100)), sorted(receiver.seqs)[:5]
    assert all(n == 1 for n in receiver.seqs.values())
    # Every line the service wrote was either exported or counted as dropped.
    queue = tel.log_queue
    assert queue.dropped["export_failed"] == 0
    assert queue.dropped["queue_full"] >= 200
    assert queue.exported + queue.dropped["queue_full"] == len(lines(stream))


def test_shutdown_during_an_outage_ends_in_time_and_counts_what_it_gave_up() -> None:
    tel, stream = configure(free_port(), queue_size=1000)
    log = structlog.get_logger()
    for seq in range(50):
        log.info("numbered", seq=seq)
    poll(lambda: tel.log_queue.retries >= 1, 20, "a failed export")
    started = time.monotonic()
    tel.shutdown(timeout_s=1.0)
    assert time.monotonic() - started < 6
    queue = tel.log_queue
    assert queue.exported == 0
    assert queue.dropped["export_failed"] + queue.dropped["queue_full"] == len(lines(stream))


def test_a_batch_refused_for_good_is_counted_and_said_once(receiver: Receiver) -> None:
    """400 will not get better by retrying: the batch is dropped, counted export_failed,
    and the service says so (once a minute at most), never silently."""
    receiver.status = 400
    receiver.start()
    tel, stream = configure(receiver.port, queue_size=1000)
    try:
        log = structlog.get_logger()
        for seq in range(120):
            log.info("numbered", seq=seq)
        poll(lambda: tel.log_queue.dropped["export_failed"] >= 120, 20, "refused batches")
    finally:
        tel.shutdown(timeout_s=2)
    assert tel.log_queue.retries == 0
    own = [line for line in lines(stream) if line.get("logger") == "otel_assist.log_export"]
    assert len(own) == 1 and "refused a batch (HTTP 400)" in own[0]["event"], own


class _GatedExporter:
    """A LogRecordExporter (the SDK interface) whose first export waits for a gate: the
    records logged meanwhile queue up, as they do behind a slow POST. Records batch sizes."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.sizes: list[int] = []

    def export(self, batch: Any) -> Any:
        from otel_assist._otel_compat import LogRecordExportResult

        if not self.sizes:
            self.gate.wait(10)
        self.sizes.append(len(batch))
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def test_records_that_arrive_during_an_export_wait_for_a_full_batch() -> None:
    """After an export the thread sends the next batch only when it is full (or at the
    interval, or on a flush): records that arrived during the export do not go out as a
    small batch of their own, each paying a whole request. A flush sends everything."""
    from opentelemetry.sdk.resources import Resource

    from otel_assist.logs.export_queue import LogQueue

    exporter = _GatedExporter()
    queue = LogQueue(exporter, Resource.create({}), batch_size=100, interval_s=60)  # type: ignore[arg-type]
    try:
        for i in range(100):
            queue.put((i, {"event": "x", "level": "info"}))
        poll(lambda: queue._in_flight == 100, 5, "first batch taken")
        for i in range(250):  # during the export: two full batches and 50 more
            queue.put((i, {"event": "y", "level": "info"}))
        exporter.gate.set()
        poll(lambda: len(exporter.sizes) == 3, 5, "full batches sent")
        time.sleep(0.2)  # what must not happen: the 50 left sent on their own
        assert exporter.sizes == [100, 100, 100] and len(queue._items) == 50
        assert queue.force_flush(5)
        assert exporter.sizes == [100, 100, 100, 50]
        assert queue.exported == 350 and queue.dropped == {"queue_full": 0, "export_failed": 0}
    finally:
        queue.shutdown(5)
