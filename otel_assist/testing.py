"""pytest plugin for service authors: assert on what a test logged and counted.

Installed with the package (entry point ``pytest11``), it provides the ``otel_capture``
fixture::

    def test_order(otel_capture, client):
        client.get("/orders/1", headers={"X-Correlation-ID": "abc"})
        assert otel_capture.log_records(event="order loaded")[0]["correlation_id"] == "abc"
        assert otel_capture.metric_value(
            "http.server.request.duration", **{"http.route": "/orders/{id}"}) == 1

Everything is captured in memory through the real configure(): the same processors, the
same bridge, the same catalog, with an in-memory log exporter and metric reader in place
of OTLP/Prometheus.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)

from otel_assist import telemetry
from otel_assist._otel_compat import LogRecordExporter, LogRecordExportResult, ReadableLogRecord


class MemoryLogExporter(LogRecordExporter):
    """Keeps exported records in a list."""

    def __init__(self) -> None:
        self.records: list[ReadableLogRecord] = []

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.records.extend(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Capture:
    """What one configured service emitted: JSON lines, OTel log records, metrics."""

    def __init__(self, service_name: str = "test_service", **overrides: Any) -> None:
        self.stream = io.StringIO()
        self.exporter = MemoryLogExporter()
        self.reader = InMemoryMetricReader()
        current = telemetry.current()
        if current is not None:
            current.shutdown()
        overrides.setdefault("log_format", "json")
        overrides.setdefault("metrics_exporters", ())
        self.telemetry = telemetry.configure(
            service_name,
            log_stream=self.stream,
            log_exporter=self.exporter,
            metric_readers=[self.reader],
            **overrides,
        )

    # -- logs

    def json_lines(self) -> list[dict[str, Any]]:
        """Every stdout line so far, parsed."""
        # split("\n"), not splitlines(): JSON strings may hold U+2028, U+0085, \x1c ... raw.
        return [orjson.loads(line) for line in self.stream.getvalue().split("\n") if line]

    def otel_records(self) -> list[ReadableLogRecord]:
        self.telemetry.force_flush()
        return list(self.exporter.records)

    def log_records(self, **match: Any) -> list[dict[str, Any]]:
        """OTel records as flat dicts (body as ``event``, ``severity``, attributes),
        filtered by equality on any of those keys."""
        flat = []
        for record in self.otel_records():
            entry: dict[str, Any] = dict(record.log_record.attributes or {})
            entry["event"] = record.log_record.body
            entry["severity"] = record.log_record.severity_text
            entry["resource"] = dict(record.resource.attributes)
            flat.append(entry)
        return [e for e in flat if all(e.get(k) == v for k, v in match.items())]

    # -- metrics

    def metric_points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        points: list[Any] = []
        if data is None:
            return points
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points

    def metric_value(self, name: str, **attributes: Any) -> float:
        """Sum of matching points: the value for counters and gauges, the number of
        observations for histograms. 0 when nothing matches."""
        total = 0.0
        for point in self.metric_points(name):
            if not _matches(point.attributes, attributes):
                continue
            if isinstance(point, HistogramDataPoint):
                total += point.count
            elif isinstance(point, NumberDataPoint):
                total += point.value
        return total

    def close(self) -> None:
        self.telemetry.shutdown()


def _matches(attributes: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    attributes = attributes or {}
    return all(attributes.get(k) == v for k, v in wanted.items())


@pytest.fixture
def otel_capture() -> Iterator[Capture]:
    """A configured service whose logs and metrics are kept in memory for assertions."""
    capture = Capture()
    try:
        yield capture
    finally:
        capture.close()
