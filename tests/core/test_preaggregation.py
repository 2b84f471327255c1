"""The pre-aggregated catalog: consistent under concurrency, bounded under hostile input.

Each test uses a Catalog of its own (the process's catalog belongs to configure()), handed
to a real SDK reader the way configure() hands the process's catalog to its readers.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)

from otel_assist import metrics
from otel_assist.metrics import OTHER, SPECS
from tests import metric_reader

LOW, HIGH = 0.0005, 5.0  # every value recorded in the concurrency test lies in [LOW, HIGH]


def _reader_for(catalog: metrics.Catalog) -> tuple[InMemoryMetricReader, MeterProvider]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    # A reader passes a collection on only when the SDK has a data point of its own;
    # configure() always has one (log_records), so does this provider.
    provider.get_meter("anchor").create_observable_counter(
        "anchor", [lambda _options: [Observation(0)]]
    )
    catalog.attach(reader)
    return reader, provider


def test_collect_while_recording_from_threads_is_consistent() -> None:
    """Four threads record histogram values and counter increments while a fifth collects
    through a real reader. Every collection sees, per series, count == sum(bucket_counts),
    a sum within [min*count, max*count] and counts that never go down; the last one sees
    every measurement."""
    catalog = metrics.Catalog()
    reader, provider = _reader_for(catalog)
    histogram = catalog["queue_wait_duration"].raw
    counter = catalog["queue_messages"].raw
    queues = ("a", "b", "c")
    wait_attrs = [catalog["queue_wait_duration"].attributes(queue_name=q) for q in queues]
    pop_attrs = [
        catalog["queue_messages"].attributes(queue_name=q, direction="pop") for q in queues
    ]
    collections_wanted = 40
    collected = threading.Event()
    recorded = [0] * 4
    errors: list[BaseException] = []

    def record(worker: int) -> None:
        try:
            i = 0
            while not collected.is_set() or i < 2000:
                q = (worker + i) % len(queues)
                # deterministic spread over the buckets, both ends included
                value = LOW + (HIGH - LOW) * ((i * 7919 + worker) % 1000) / 999
                histogram.record(value, wait_attrs[q])
                counter.add(1, pop_attrs[q])
                i += 1
            recorded[worker] = i
        except BaseException as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    last_count: dict[str, int] = {}
    last_value: dict[str, float] = {}
    partial_seen = 0
    try:
        for _ in range(collections_wanted):
            for p in metric_reader.points(reader, "queue_wait_duration", must_collect=True):
                assert isinstance(p, HistogramDataPoint)
                q = p.attributes["queue_name"]
                assert p.count == sum(p.bucket_counts), p
                assert len(p.bucket_counts) == len(p.explicit_bounds) + 1
                assert LOW <= p.min <= p.max <= HIGH
                slack = 1e-9 * max(1.0, p.sum)
                assert p.min * p.count - slack <= p.sum <= p.max * p.count + slack, p
                assert p.count >= last_count.get(q, 0)
                last_count[q] = p.count
                partial_seen += 1
            for p in metric_reader.points(reader, "queue_messages", must_collect=True):
                assert isinstance(p, NumberDataPoint)
                q = p.attributes["queue_name"]
                assert p.value >= last_value.get(q, 0)
                last_value[q] = p.value
    finally:
        collected.set()
        for t in threads:
            t.join()
    assert not errors
    assert partial_seen > 0  # collections did overlap the recording
    total = sum(recorded)
    final = {
        p.attributes["queue_name"]: p
        for p in metric_reader.points(reader, "queue_wait_duration", must_collect=True)
    }
    assert sum(p.count for p in final.values()) == total
    assert all(p.count == sum(p.bucket_counts) for p in final.values())
    final_counts = {
        p.attributes["queue_name"]: p.value
        for p in metric_reader.points(reader, "queue_messages", must_collect=True)
    }
    assert sum(final_counts.values()) == total
    assert {q: final[q].count for q in final} == final_counts
    provider.shutdown()


def test_reset_starts_from_zero_and_keeps_call_site_dicts_valid() -> None:
    catalog = metrics.Catalog()
    reader, provider = _reader_for(catalog)
    inst = catalog["cron_jobs"]
    attrs = inst.attributes(job_type="backup", status="completed")
    inst.raw.add(3, attrs)
    assert [p.value for p in metric_reader.points(reader, "cron_jobs", must_collect=True)] == [3]
    catalog.reset()
    assert list(metric_reader.points(reader, "cron_jobs", must_collect=True)) == []
    inst.raw.add(1, attrs)  # a dict folded before the reset still records
    (point,) = metric_reader.points(reader, "cron_jobs", must_collect=True)
    assert point.value == 1 and dict(point.attributes) == attrs
    provider.shutdown()


def test_a_scope_the_sdk_also_has_appears_once() -> None:
    """configure()'s own meter is "otel_assist", the catalog's scope too: one scope entry
    holds both (a repeated scope lost series behind the Collector)."""
    catalog = metrics.Catalog()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("otel_assist").create_observable_counter(
        "log_records", [lambda _options: [Observation(1, {"level": "info"})]]
    )
    catalog.attach(reader)
    catalog["tool_calls"].add(1, tool_name="t", status="success")
    catalog["http.server.active_requests"].add(1, **{"http.request.method": "GET"})
    data = reader.get_metrics_data()
    assert data is not None
    (resource,) = data.resource_metrics
    names = [sm.scope.name for sm in resource.scope_metrics]
    assert sorted(names) == ["otel_assist", "otel_assist.http"]
    by_scope = {sm.scope.name: {m.name for m in sm.metrics} for sm in resource.scope_metrics}
    assert by_scope["otel_assist"] == {"log_records", "tool_calls"}
    assert by_scope["otel_assist.http"] == {"http.server.active_requests"}
    provider.shutdown()


def test_huge_attribute_values_are_not_kept_in_the_key_cache() -> None:
    catalog = metrics.Catalog()
    reader, provider = _reader_for(catalog)
    counter = catalog["tool_calls"].raw
    for i in range(50):
        counter.add(1, {"tool_name": f"{i}" + "x" * 100_000, "status": "success"})
    assert len(counter._by_key) == 0  # folded each time, never remembered
    (point,) = metric_reader.points(reader, "tool_calls", must_collect=True)
    assert point.value == 50 and point.attributes["tool_name"] == OTHER
    provider.shutdown()


def test_values_the_sdk_refuses_are_dropped() -> None:
    catalog = metrics.Catalog()
    reader, provider = _reader_for(catalog)
    hist = catalog["queue_wait_duration"]
    for bad in (-1.0, math.nan, math.inf, -math.inf):
        hist.record(bad, queue_name="q")
        catalog["queue_messages"].add(bad, queue_name="q", direction="push")
        catalog["queue_length"].set(bad if bad != -1.0 else math.nan, queue_name="q")
    hist.record(0.0, queue_name="q")  # zero is a valid duration: first bucket
    (point,) = metric_reader.points(reader, "queue_wait_duration", must_collect=True)
    assert point.count == 1 and point.bucket_counts[0] == 1 and point.sum == 0.0
    # a refused value creates no series either
    assert list(metric_reader.points(reader, "queue_messages", must_collect=True)) == []
    assert list(metric_reader.points(reader, "queue_length", must_collect=True)) == []
    provider.shutdown()


# ----------------------------------------------------------------- attribute property


NASTY_TEXT = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["\udcff", "\x00", "\n", "a\x1bb", "", OTHER, "success", "push", "é"]),
    st.text(min_size=65, max_size=200),
    st.just("x" * 100_000),
)


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class _OddMapping(Mapping[str, Any]):
    """A Mapping that is not a dict (and so not hashable as a value)."""

    def __getitem__(self, key: str) -> Any:
        return {"k": 1}[key]

    def __iter__(self) -> Iterator[str]:
        return iter(["k"])

    def __len__(self) -> int:
        return 1


NASTY_VALUE = st.one_of(
    NASTY_TEXT,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.binary(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.builds(_Unprintable),
    st.builds(_OddMapping),
)
KEYS = st.one_of(
    st.sampled_from(
        [
            "queue_name",
            "direction",
            "user_id",
            "correlation_id",
            "http.route",
            "message",
            "QUEUE_NAME",
        ]
    ),
    NASTY_TEXT,
)
ATTRIBUTE_SETS = st.lists(st.dictionaries(KEYS, NASTY_VALUE, max_size=6), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ATTRIBUTE_SETS, st.integers(min_value=1, max_value=5))
def test_any_attribute_set_records_within_the_allowlist(
    attribute_sets: list[dict[str, Any]], limit: int
) -> None:
    """Whatever mapping a caller passes (through the kwargs helper or straight to the
    pre-aggregated instrument), nothing raises, nothing is lost, and the exported series
    carry only allowlisted keys with printable values of at most 64 characters, a fixed
    set's values or ``_other``, at most ``limit`` open values per key."""
    catalog = metrics.Catalog(attribute_limit=limit)
    reader, provider = _reader_for(catalog)
    counter = catalog["queue_messages"]
    fixed = SPECS["queue_messages"].attributes["direction"]
    assert fixed is not None
    for i, attributes in enumerate(attribute_sets):
        if i % 3 == 1:
            counter.raw.add(1, attributes)
        elif i % 3 == 2:  # a read-only Mapping that is not a dict
            counter.raw.add(1, MappingProxyType(attributes))
        else:
            # (the helper's own parameter names cannot be attribute keywords)
            counter.add(1, **{k: v for k, v in attributes.items() if k not in ("amount", "self")})
    points = (
        list(metric_reader.points(reader, "queue_messages", must_collect=True))
        if attribute_sets
        else []
    )
    assert sum(p.value for p in points) == len(attribute_sets)
    open_values: set[str] = set()
    for p in points:
        attrs = dict(p.attributes)
        assert set(attrs) <= {"queue_name", "direction"}  # user_id & co. are dropped
        if "direction" in attrs:
            assert attrs["direction"] in fixed | {OTHER}
        if "queue_name" in attrs:
            value = attrs["queue_name"]
            assert isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable()
            value.encode("utf-8")  # encodable for /metrics and OTLP
            if value != OTHER:
                open_values.add(value)
    assert len(open_values) <= limit
    assert len({frozenset(dict(p.attributes).items()) for p in points}) == len(points)
    provider.shutdown()


def test_bound_handles_follow_a_reset_and_stay_consistent_under_threads() -> None:
    """Bound handles (the queue path's per-message recording) land in the same series as
    the attribute-mapping calls, keep count == sum(buckets) while a reader collects from
    another thread, and after a reset record into the new series, not a forgotten one."""
    catalog = metrics.Catalog()
    reader, provider = _reader_for(catalog)
    wait = catalog["queue_wait_duration"]
    messages = catalog["queue_messages"]
    bound_wait = wait.raw.bind(wait.attributes(queue_name="q"))
    bound_pop = messages.raw.bind(messages.attributes(queue_name="q", direction="pop"))
    per_thread = 3000
    stop = threading.Event()
    bad: list[Any] = []

    def record() -> None:
        for i in range(per_thread):
            bound_wait.record(LOW + (HIGH - LOW) * (i % 100) / 99)
            bound_pop.add(1)

    def collect() -> None:
        while not stop.is_set():
            for p in metric_reader.points(reader, "queue_wait_duration", must_collect=True):
                if p.count != sum(p.bucket_counts):
                    bad.append(p)

    collector = threading.Thread(target=collect)
    collector.start()
    threads = [threading.Thread(target=record) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    collector.join()
    assert bad == []
    wait.raw.record(1.0, wait.attributes(queue_name="q"))  # the mapping path: same series
    (point,) = metric_reader.points(reader, "queue_wait_duration", must_collect=True)
    assert point.count == 3 * per_thread + 1 == sum(point.bucket_counts)
    (count,) = metric_reader.points(reader, "queue_messages", must_collect=True)
    assert count.value == 3 * per_thread
    bound_pop.add(-1)  # refused like Counter.add refuses it
    bound_wait.record(math.nan)
    catalog.reset()
    assert list(metric_reader.points(reader, "queue_messages", must_collect=True)) == []
    bound_pop.add(2)
    bound_wait.record(0.5)
    (count,) = metric_reader.points(reader, "queue_messages", must_collect=True)
    (point,) = metric_reader.points(reader, "queue_wait_duration", must_collect=True)
    assert count.value == 2 and point.count == 1 and point.sum == 0.5
    provider.shutdown()
