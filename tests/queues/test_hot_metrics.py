"""Deferred hot-path metrics give exactly what direct SDK calls give."""

from __future__ import annotations

import random

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_assist.metrics import instruments as metrics
from otel_assist.metrics.hot import HotPath


def _points(reader: InMemoryMetricReader, name: str) -> list[tuple[object, ...]]:
    data = reader.get_metrics_data()
    assert data is not None
    out = []
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    for p in m.data.data_points:
                        out.append((
                            tuple(sorted(p.attributes.items())),
                            getattr(p, "count", None), getattr(p, "sum", None),
                            getattr(p, "min", None), getattr(p, "max", None),
                            tuple(getattr(p, "bucket_counts", ())), getattr(p, "value", None),
                        ))  # fmt: skip
    return sorted(out, key=repr)


def test_replay_equals_direct_recording() -> None:
    readers = [InMemoryMetricReader(), InMemoryMetricReader()]
    cats = []
    for reader in readers:
        cats.append(metrics.Catalog(MeterProvider(metric_readers=[reader]).get_meter("t")))
    direct, deferred = cats
    hot = HotPath()
    hot.ensure_registered(deferred)
    rng = random.Random(7)
    for round_ in range(3):  # new series, existing series, after a collection
        for i in range(2500):
            q = f"q{i % 3}"
            value = rng.expovariate(20.0)
            h_direct = direct["queue_wait_duration"]
            h_direct.raw.record(value, h_direct.attributes(queue_name=q))
            h_def = deferred["queue_wait_duration"]
            hot.record(h_def.raw, h_def.attributes(queue_name=q), value)
            c_direct = direct["queue_messages"]
            c_direct.raw.add(1, c_direct.attributes(queue_name=q, direction="pop"))
            c_def = deferred["queue_messages"]
            hot.add(c_def.raw, c_def.attributes(queue_name=q, direction="pop"))
        if round_ == 1:
            hot.flush()  # the background flusher's path, between collections
        for name in ("queue_wait_duration", "queue_messages"):
            got, want = _points(readers[1], name), _points(readers[0], name)
            assert len(want) == 3
            # Sums may differ in the last bits (added in another order).
            for g, w in zip(got, want, strict=True):
                assert g[:2] == w[:2] and g[3:] == w[3:], (g, w)
                if g[2] is not None:
                    assert abs(g[2] - w[2]) < 1e-9 * max(1.0, w[2])


def test_the_fast_path_applies_to_catalog_histograms() -> None:
    from otel_assist.metrics.hot import _targets

    reader = InMemoryMetricReader()
    cat = metrics.Catalog(MeterProvider(metric_readers=[reader]).get_meter("t"))
    h = cat["queue_wait_duration"]
    attrs = h.attributes(queue_name="q")
    targets = _targets(h.raw, attrs, 0.5)
    assert targets is not None and all(agg is not None for agg, _m, _skip in targets)
