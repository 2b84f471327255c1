"""The one way tests read a metric: a value or series for a name and attributes, from an
in-memory OpenTelemetry collection or from Prometheus text exposition (``/metrics``).

Both sources answer the same questions, so a test can check the SDK's view and the scraped
view of one metric with the same call. Names are what the source calls them: the
instrument name for an in-memory collection (``cron_jobs``), the sample name for text
exposition (``cron_jobs_total``, ``..._count``). Attributes match by equality on the ones
given; the others are free. Counters and histograms add up over the matching series;
gauges too (ask for one series by giving all its attributes).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics.export import MetricReader, MetricsData
from prometheus_client.parser import text_string_to_metric_families

#: What can be read: a reader (collected on each call), one collection, or exposition text.
Source = MetricReader | MetricsData | str | None


@dataclass(frozen=True)
class Histogram:
    """Unpacks like a tuple too: ``count, *_ = histogram(...)``."""

    count: int
    sum: float
    min: float
    max: float

    def __iter__(self) -> Iterator[Any]:
        return iter((self.count, self.sum, self.min, self.max))


def _collect(source: MetricReader | MetricsData | None) -> MetricsData | None:
    if isinstance(source, MetricReader):
        # get_metrics_data is the public collect() of InMemoryMetricReader, the only
        # reader the tests read from directly.
        return source.get_metrics_data()  # type: ignore[attr-defined]
    return source


def _matches(attributes: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return all(attributes.get(k) == v for k, v in wanted.items())


def points(
    source: MetricReader | MetricsData | None,
    name: str,
    *,
    must_collect: bool = False,
    **attrs: Any,
) -> list[Any]:
    """The in-memory data points of ``name`` whose attributes match ``attrs``. An empty
    collection reads as no points, unless ``must_collect`` (then it fails the test)."""
    data = _collect(source)
    if data is None:
        assert not must_collect, "the reader collected nothing"
        return []
    return [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
        if _matches(dict(point.attributes or {}), attrs)
    ]


def _samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name, dict(sample.labels), float(sample.value)


def series(source: Source, name: str, **attrs: Any) -> list[tuple[dict[str, Any], float]]:
    """(attributes, value) of every series of ``name`` matching ``attrs``."""
    if isinstance(source, str):
        wanted = {k: str(v) for k, v in attrs.items()}
        return [(labels, v) for n, labels, v in _samples(source) if n == name
                and _matches(labels, wanted)]  # fmt: skip
    return [(dict(p.attributes or {}), float(p.value)) for p in points(source, name, **attrs)]


def value(source: Source, name: str, **attrs: Any) -> float:
    """The sum over the series of ``name`` matching ``attrs`` (0 if there is none)."""
    return sum(v for _, v in series(source, name, **attrs))


def histogram(source: Source, name: str, **attrs: Any) -> Histogram:
    """Count, sum, min and max over the matching histogram series. From text exposition,
    ``name`` is the family name (``cron_job_duration_seconds``); min and max are not
    exposed there and read as nan."""
    if isinstance(source, str):
        count = value(source, name + "_count", **attrs)
        total = value(source, name + "_sum", **attrs)
        return Histogram(int(count), total, float("nan"), float("nan"))
    matching = points(source, name, **attrs)
    return Histogram(
        sum(p.count for p in matching),
        sum(p.sum for p in matching),
        min((p.min for p in matching), default=float("inf")),
        max((p.max for p in matching), default=float("-inf")),
    )


def totals(text: str) -> dict[str, float]:
    """Every sample name in ``text`` with the sum over its series."""
    out: dict[str, float] = {}
    for name, _labels, v in _samples(text):
        out[name] = out.get(name, 0.0) + v
    return out
