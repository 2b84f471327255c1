"""The OTLP/HTTP log exporter against a scripted HTTP endpoint on loopback.

The endpoint answers each POST with the status (and body) the test queues, and keeps what
it received, so each outcome the export thread acts on is checked: success, partial success,
retryable statuses, a refusal for good, no answer at all, gzip and headers from the
standard environment variables.
"""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk.resources import Resource

from otel_assist._otel_compat import LogRecordExportResult, ReadableLogRecord, SeverityNumber
from otel_assist.logs.export_queue import to_log_record
from otel_assist.logs.otlp_exporter import OTLPHttpLogExporter, parse_headers
from tests.servers import free_port


class ScriptedEndpoint:
    def __init__(self) -> None:
        self.answers: list[tuple[int, bytes]] = []
        self.received: list[tuple[dict[str, str], bytes]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status, payload = endpoint.answers.pop(0) if endpoint.answers else (200, b"")
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/logs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[ScriptedEndpoint]:
    e = ScriptedEndpoint()
    yield e
    e.close()


def _batch(n: int) -> list[ReadableLogRecord]:
    resource = Resource({"service.name": "exporter_test"})
    records = []
    for i in range(n):
        record = to_log_record(
            1_700_000_000_000_000_000 + i, {"event": f"line {i}", "level": "info", "n": i}
        )
        records.append(ReadableLogRecord(record, resource=resource))
    return records


def _bodies(request_body: bytes) -> list[str]:
    request = ExportLogsServiceRequest.FromString(request_body)
    return [
        rec.body.string_value
        for rl in request.resource_logs
        for sl in rl.scope_logs
        for rec in sl.log_records
    ]


def test_a_batch_arrives_whole(endpoint: ScriptedEndpoint) -> None:
    exporter = OTLPHttpLogExporter(endpoint.url, timeout=5)
    assert exporter.export(_batch(3)) is LogRecordExportResult.SUCCESS
    headers, body = endpoint.received[0]
    assert headers["content-type"] == "application/x-protobuf"
    assert _bodies(body) == ["line 0", "line 1", "line 2"]
    assert exporter.take_rejected() == 0
    exporter.shutdown()


def test_partial_success_counts_the_rejected_records(endpoint: ScriptedEndpoint) -> None:
    answer = ExportLogsServiceResponse(
        partial_success=ExportLogsPartialSuccess(rejected_log_records=2, error_message="x")
    )
    endpoint.answers.append((200, answer.SerializeToString()))
    exporter = OTLPHttpLogExporter(endpoint.url, timeout=5)
    assert exporter.export(_batch(3)) is LogRecordExportResult.SUCCESS
    assert exporter.take_rejected() == 2
    assert exporter.take_rejected() == 0
    exporter.shutdown()


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(429, True), (502, True), (503, True), (504, True), (500, True), (400, False), (401, False),
     (413, False)],
)  # fmt: skip
def test_failures_say_whether_to_retry(
    endpoint: ScriptedEndpoint, status: int, retryable: bool
) -> None:
    endpoint.answers.append((status, b"no"))
    exporter = OTLPHttpLogExporter(endpoint.url, timeout=5)
    assert exporter.export(_batch(1)) is LogRecordExportResult.FAILURE
    assert exporter.last_failure == f"HTTP {status}"
    assert exporter.last_failure_retryable is retryable
    # the next attempt succeeds and clears the failure
    assert exporter.export(_batch(1)) is LogRecordExportResult.SUCCESS
    assert exporter.last_failure is None
    exporter.shutdown()


def test_no_answer_is_retryable_and_shutdown_is_not() -> None:
    exporter = OTLPHttpLogExporter(f"http://127.0.0.1:{free_port()}/v1/logs", timeout=2)
    assert exporter.export(_batch(1)) is LogRecordExportResult.FAILURE
    assert exporter.last_failure_retryable is True
    assert exporter.last_failure == "ConnectError"
    exporter.shutdown()
    assert exporter.export(_batch(1)) is LogRecordExportResult.FAILURE
    assert exporter.last_failure_retryable is False


def test_headers_and_gzip_from_the_environment(
    endpoint: ScriptedEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-generic=1,x-both=generic")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "X-Api-Key=s%3Dcret,x-both=logs")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip")
    exporter = OTLPHttpLogExporter(endpoint.url, timeout=5)
    assert exporter.export(_batch(2)) is LogRecordExportResult.SUCCESS
    headers, body = endpoint.received[0]
    # the logs-specific variable wins as a whole, as in the SDK
    assert headers["x-api-key"] == "s=cret"
    assert headers["x-both"] == "logs"
    assert "x-generic" not in headers
    assert headers["content-encoding"] == "gzip"
    assert _bodies(gzip.decompress(body)) == ["line 0", "line 1"]
    exporter.shutdown()


def test_header_parsing_skips_what_it_cannot_read() -> None:
    assert parse_headers("a=1,,=x,novalue,b = 2 ,c=%20x") == {"a": "1", "b": "2", "c": "x"}
    assert parse_headers(None) == {}


def test_severity_survives_the_encoding(endpoint: ScriptedEndpoint) -> None:
    record = to_log_record(1, {"event": "boom", "level": "critical"})
    exporter = OTLPHttpLogExporter(endpoint.url, timeout=5)
    batch = [ReadableLogRecord(record, resource=Resource({}))]
    assert exporter.export(batch) is LogRecordExportResult.SUCCESS
    request = ExportLogsServiceRequest.FromString(endpoint.received[0][1])
    rec = request.resource_logs[0].scope_logs[0].log_records[0]
    assert rec.severity_number == SeverityNumber.FATAL.value
    exporter.shutdown()


class IdleClosingEndpoint:
    """Answers one request per connection as if keeping it alive (HTTP/1.1, a
    Content-Length, no ``Connection: close``), then closes it: what a Collector or a load
    balancer does to a connection left idle past its timeout."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1/logs"
        self.connections = 0
        self.bodies: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.bodies.append(body)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


def test_a_kept_alive_connection_closed_while_idle_costs_nothing() -> None:
    """The next batch goes out on a new connection at once: success, not an outage (no
    retry wait in the queue), and each batch arrives exactly once."""
    endpoint = IdleClosingEndpoint()
    exporter = OTLPHttpLogExporter(endpoint.url, timeout=5)
    try:
        results = [exporter.export(_batch(2)) for _ in range(4)]
    finally:
        exporter.shutdown()
        endpoint.close()
    assert results == [LogRecordExportResult.SUCCESS] * 4
    assert not exporter.last_failure_retryable
    assert [len(_bodies(b)) for b in endpoint.bodies] == [2, 2, 2, 2]
    assert endpoint.connections == 4


class ShapedAnswersEndpoint:
    """One kept-alive connection answered with each of the HTTP/1.x answer shapes an
    endpoint or a proxy in front of it may use, in turn: an interim ``100 Continue``
    before the answer, a chunked body with a trailer, a body delimited by the connection
    closing (the client must then reconnect), and a plain Content-Length one."""

    ANSWERS = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nbusy",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    )

    def __init__(self) -> None:
        import socket

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1/logs"
        self.connections = 0
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while self.requests < len(self.ANSWERS):
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if b"\r\n\r\n" not in data:
                        break
                    head, _, data = data.partition(b"\r\n\r\n")
                    length = next(
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                    while len(data) < length:
                        data += conn.recv(65536)
                    data = data[length:]
                    answer = self.ANSWERS[self.requests]
                    self.requests += 1
                    conn.sendall(answer)
                    if b"Content-Length" not in answer and b"chunked" not in answer:
                        break  # the body ends with the connection

    def close(self) -> None:
        self.sock.close()


def test_every_answer_shape_is_read_to_its_end() -> None:
    """Each batch gets its own answer (none is read as the previous one's rest), the
    close-delimited one costs a new connection and nothing else."""
    endpoint = ShapedAnswersEndpoint()
    exporter = OTLPHttpLogExporter(endpoint.url, timeout=5)
    try:
        results = [exporter.export(_batch(1)) for _ in range(4)]
    finally:
        exporter.shutdown()
        endpoint.close()
    assert results == [
        LogRecordExportResult.SUCCESS,
        LogRecordExportResult.SUCCESS,
        LogRecordExportResult.FAILURE,
        LogRecordExportResult.SUCCESS,
    ]
    assert endpoint.requests == 4
    assert endpoint.connections == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (3 << 20),  # close-delimited, endless enough
    ],
    ids=["huge-content-length", "negative-length", "huge-chunk", "streamed-body"],
)
def test_an_oversized_answer_fails_the_batch_without_holding_it(answer: bytes) -> None:
    """An endpoint (or a proxy's error page) announcing or streaming more than an OTLP
    answer can be is a failed export, not megabytes kept in the service or a wait for
    bytes that never come."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    # A timeout far above the bound below: waiting for the announced bytes would fail the
    # export too, but only after the timeout.
    url = f"http://127.0.0.1:{server.getsockname()[1]}/v1/logs"
    exporter = OTLPHttpLogExporter(url, timeout=60)
    try:
        started = time.monotonic()
        assert exporter.export(_batch(1)) == LogRecordExportResult.FAILURE
        assert time.monotonic() - started < 20
    finally:
        exporter.shutdown()
        server.close()
