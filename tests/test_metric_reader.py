"""tests/metric_reader.py reads the same numbers from an in-memory collection and from
Prometheus text exposition, whatever the label values hold."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from tests import metric_reader

# Label values as they reach an exposition: quotes, backslashes, newlines, braces, lone
# surrogates are not encodable in UTF-8 text and are left out (the exporter never sees them).
LABEL_VALUES = st.text(
    st.characters(exclude_categories=["Cs"]), min_size=0, max_size=30
) | st.sampled_from(['"', "\\", "\n", "a}b", 'x="y"', "\\n", "é", "\x00", " "])
SERIES = st.dictionaries(LABEL_VALUES, st.integers(min_value=1, max_value=10**6), min_size=1,
                         max_size=6)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(SERIES)
def test_both_sources_agree_per_series_and_in_total(series: dict[str, int]) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    counter = provider.get_meter("t").create_counter("jobs")
    registry = CollectorRegistry()
    exposed = Counter("jobs", "jobs", ["kind"], registry=registry)
    for kind, n in series.items():
        counter.add(n, {"kind": kind, "fixed": "1"})
        exposed.labels(kind=kind).inc(n)
    data = reader.get_metrics_data()
    text = generate_latest(registry).decode()
    try:
        for kind, n in series.items():
            assert metric_reader.value(data, "jobs", kind=kind) == n
            assert metric_reader.value(text, "jobs_total", kind=kind) == n
        assert metric_reader.value(data, "jobs") == sum(series.values())
        assert metric_reader.value(text, "jobs_total") == sum(series.values())
        assert metric_reader.totals(text)["jobs_total"] == sum(series.values())
        assert metric_reader.value(data, "jobs", kind="never seen") == 0
        assert metric_reader.value(text, "absent_total") == 0
    finally:
        provider.shutdown()


def test_histograms_read_count_and_sum_from_both() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    hist = provider.get_meter("t").create_histogram("duration")
    registry = CollectorRegistry()
    exposed = Histogram("duration_seconds", "d", ["route"], registry=registry)
    for v in (0.25, 0.5, 4.0):
        hist.record(v, {"route": "/a"})
        exposed.labels(route="/a").observe(v)
    hist.record(1.0, {"route": "/b"})
    try:
        count, total, lo, hi = metric_reader.histogram(reader, "duration", route="/a")
        assert (count, total, lo, hi) == (3, 4.75, 0.25, 4.0)
        text = generate_latest(registry).decode()
        from_text = metric_reader.histogram(text, "duration_seconds", route="/a")
        assert (from_text.count, from_text.sum) == (3, 4.75)
        assert math.isnan(from_text.min) and math.isnan(from_text.max)
        assert metric_reader.histogram(reader, "duration").count == 4
    finally:
        provider.shutdown()


def test_an_empty_collection_reads_as_nothing_unless_it_must_collect() -> None:
    assert metric_reader.value(None, "jobs") == 0
    assert metric_reader.points(None, "jobs") == []
    with pytest.raises(AssertionError, match="collected nothing"):
        metric_reader.points(None, "jobs", must_collect=True)
