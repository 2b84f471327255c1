"""Lean HTTP server metrics: pre-aggregated in plain Python, exported as OpenTelemetry data.

Recording ``http.server.request.duration`` through the SDK's ``Histogram.record`` costs a
``Measurement`` object, attribute validation and a frozenset key per request, and the two
``active_requests`` up-down-counter calls as much again: together more than a tenth of a
hello-world request (``bench/http_overhead.py``). Here a request costs one dict lookup, one
``bisect`` and a few integer increments. At collection time the aggregates become ordinary
SDK ``Metric`` objects (cumulative histogram and sum, same names, units, bucket boundaries
and attributes as the semantic conventions), appended to what every reader of the
MeterProvider receives, so ``/metrics``, OTLP and the test capture all see them.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_assist.metrics.instruments import SPECS, AttributeFolder, Spec

_SCOPE = InstrumentationScope("otel_assist.http")
Key = tuple[str, str | None, int]


class _Series:
    __slots__ = ("bucket_counts", "count", "max", "min", "sum")

    def __init__(self, buckets: int) -> None:
        self.bucket_counts = [0] * (buckets + 1)
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")


class HttpServerMetrics:
    """``http.server.request.duration`` and ``http.server.active_requests`` for one process."""

    def __init__(self, attribute_limit: int = 100) -> None:
        self.duration_spec: Spec = SPECS["http.server.request.duration"]
        self.active_spec: Spec = SPECS["http.server.active_requests"]
        self.bounds = tuple(float(b) for b in self.duration_spec.buckets)
        self._duration_folder = AttributeFolder(self.duration_spec, attribute_limit)
        self._active_folder = AttributeFolder(self.active_spec, attribute_limit)
        self._series: dict[Key, _Series] = {}
        self._attributes: dict[Key, dict[str, Any]] = {}
        self._folded: dict[Key, Key] = {}
        self._active: dict[str, int] = {}
        self._method_key: dict[str, str] = {}
        self.start_ns = time.time_ns()

    # -- hot path (event-loop thread)

    def request_started(self, method: str) -> str:
        """Count a request in flight; returns the (folded) method to pass to finished()."""
        folded = self._method_key.get(method)
        if folded is None:
            folded = self._active_folder.fold({"http.request.method": method})[
                "http.request.method"
            ]
            self._method_key[method] = folded
        self._active[folded] = self._active.get(folded, 0) + 1
        return folded

    def request_finished(
        self, active_method: str, method: str, route: str | None, status: int, seconds: float
    ) -> None:
        self._active[active_method] -= 1
        raw: Key = (method, route, status)
        key = self._folded.get(raw)
        if key is None:
            key = self._fold(raw)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(len(self.bounds))
        series.bucket_counts[bisect_left(self.bounds, seconds)] += 1
        series.count += 1
        series.sum += seconds
        if seconds < series.min:
            series.min = seconds
        if seconds > series.max:
            series.max = seconds

    def _fold(self, raw: Key) -> Key:
        method, route, status = raw
        attrs = self._duration_folder.fold(
            {
                "http.request.method": method,
                "http.route": route,
                "http.response.status_code": status,
            }
        )
        key: Key = (
            attrs["http.request.method"],
            attrs.get("http.route"),
            int(attrs["http.response.status_code"]),
        )
        self._attributes[key] = attrs
        if len(self._folded) < 10_000:
            self._folded[raw] = key
        return key

    # -- collection (reader thread)

    def metrics(self) -> list[Metric]:
        now = time.time_ns()
        points = []
        for key, s in list(self._series.items()):
            points.append(
                HistogramDataPoint(
                    attributes=self._attributes[key],
                    start_time_unix_nano=self.start_ns,
                    time_unix_nano=now,
                    count=s.count,
                    sum=s.sum,
                    bucket_counts=list(s.bucket_counts),
                    explicit_bounds=self.bounds,
                    min=s.min,
                    max=s.max,
                )
            )
        active = [
            NumberDataPoint(
                attributes={"http.request.method": method},
                start_time_unix_nano=self.start_ns,
                time_unix_nano=now,
                value=value,
            )
            for method, value in list(self._active.items())
        ]
        out = []
        if points:
            out.append(
                Metric(
                    name=self.duration_spec.name,
                    description=self.duration_spec.description,
                    unit=self.duration_spec.unit,
                    data=Histogram(
                        data_points=points,
                        aggregation_temporality=AggregationTemporality.CUMULATIVE,
                    ),
                )
            )
        if active:
            out.append(
                Metric(
                    name=self.active_spec.name,
                    description=self.active_spec.description,
                    unit=self.active_spec.unit,
                    data=Sum(
                        data_points=active,
                        aggregation_temporality=AggregationTemporality.CUMULATIVE,
                        is_monotonic=False,
                    ),
                )
            )
        return out


Producer = Callable[[], Sequence[Metric]]


def attach_producer(reader: MetricReader, producer: Producer) -> None:
    """Make ``reader`` receive ``producer``'s metrics with every collection.

    ``_receive_metrics`` is the hook each MetricReader implements to get the collected
    data; wrapping it on the instance works for every reader type alike.
    """
    original = reader._receive_metrics

    def receive(metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        original(_with_extra(metrics_data, producer()), timeout_millis=timeout_millis, **kwargs)

    reader._receive_metrics = receive  # type: ignore[method-assign]


def _with_extra(data: MetricsData, extra: Sequence[Metric]) -> MetricsData:
    if not extra or not data.resource_metrics:
        return data
    first, *rest = data.resource_metrics
    scope_metrics = [*first.scope_metrics, ScopeMetrics(_SCOPE, list(extra), "")]
    return MetricsData([replace(first, scope_metrics=scope_metrics), *rest])


_current = HttpServerMetrics()


def current() -> HttpServerMetrics:
    """The aggregates of the active configure() (a detached one before it)."""
    return _current


def install(metrics: HttpServerMetrics) -> None:
    global _current
    _current = metrics
