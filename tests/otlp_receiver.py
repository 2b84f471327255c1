"""A local OTLP/HTTP receiver that decodes protobuf: the stand-in for the Collector in the
core tests (the Collector's own tests use the real binary). It records every request path,
so a test can also prove that nothing was sent to ``/v1/traces``."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


class OTLPReceiver:
    """Collects decoded log records (flattened) and metric names; thread-safe.

    Requests are kept as received and decoded when read (``records()``, ``metric_names``):
    the handler thread stays cheap, so a benchmark's sink sharing the machine's two cores
    with the server under test measures the server, not the sink's protobuf decoding."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.paths: list[str] = []
        self.log_records: list[dict[str, Any]] = []
        self._metric_names: set[str] = set()
        self._pending: list[tuple[str, bytes]] = []
        self._decoding = threading.Lock()
        self.respond = True
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.handle(self.path, body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, path: str, body: bytes) -> None:
        with self.lock:
            self.paths.append(path)
            self._pending.append((path, body))

    def _decode_pending(self) -> None:
        with self._decoding:  # one decoder at a time keeps records in arrival order
            with self.lock:
                pending, self._pending = self._pending, []
            for path, body in pending:
                if path == "/v1/logs":
                    self._decode_logs(body)
                elif path == "/v1/metrics":
                    self._decode_metrics(body)

    def _decode_logs(self, body: bytes) -> None:
        request = ExportLogsServiceRequest.FromString(body)
        for rl in request.resource_logs:
            resource = {kv.key: any_value(kv.value) for kv in rl.resource.attributes}
            for sl in rl.scope_logs:
                for rec in sl.log_records:
                    flat = {kv.key: any_value(kv.value) for kv in rec.attributes}
                    flat["body"] = any_value(rec.body)
                    flat["severity_text"] = rec.severity_text
                    flat["severity_number"] = rec.severity_number
                    flat["resource"] = resource
                    with self.lock:
                        self.log_records.append(flat)

    def _decode_metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest.FromString(body)
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    with self.lock:
                        self._metric_names.add(metric.name)

    @property
    def metric_names(self) -> set[str]:
        self._decode_pending()
        with self.lock:
            return set(self._metric_names)

    def records(self, **match: Any) -> list[dict[str, Any]]:
        self._decode_pending()
        with self.lock:
            items = list(self.log_records)
        return [r for r in items if all(r.get(k) == v for k, v in match.items())]

    def __enter__(self) -> OTLPReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
