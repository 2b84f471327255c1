"""Build OTLP log requests with opentelemetry-proto and post them over real HTTP, the way
the Collector's otlp_http exporter posts to Loki (for the stand-in's tests and for pages
that read it)."""

from __future__ import annotations

import gzip
import time
import urllib.error
import urllib.request

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from tests.loki.standin import LokiStandIn


def kv(key: str, value: str | int) -> KeyValue:
    any_value = (
        AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
    )
    return KeyValue(key=key, value=any_value)


def record(
    body: str,
    *,
    severity: int = 9,
    text: str = "INFO",
    attrs: dict[str, str | int] | None = None,
    ts_ns: int | None = None,
) -> LogRecord:
    return LogRecord(
        time_unix_nano=ts_ns if ts_ns is not None else time.time_ns(),
        severity_number=severity,  # type: ignore[arg-type]
        severity_text=text,
        body=AnyValue(string_value=body),
        attributes=[kv(k, v) for k, v in (attrs or {}).items()],
    )


def request(records: list[LogRecord], service: str = "checkout", env: str = "test") -> bytes:
    resource = Resource(
        attributes=[
            kv("service.name", service),
            kv("deployment.environment.name", env),
            kv("service.instance.id", "0f3c"),
            kv("host.name", "box-1"),
        ]
    )
    req = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=records)])]
    )
    return req.SerializeToString()


def push(loki: LokiStandIn, body: bytes, gzipped: bool = False) -> tuple[int, str]:
    headers = {"Content-Type": "application/x-protobuf"}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    req = urllib.request.Request(loki.endpoint + "/v1/logs", body, headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
