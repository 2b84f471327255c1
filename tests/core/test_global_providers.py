"""The global MeterProvider: public-API proxies that follow every configure() build."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics.export import HistogramDataPoint

from otel_assist import global_providers
from otel_assist.testing import Capture


def test_every_instrument_kind_follows_each_build() -> None:
    """Instruments a library created once, before configure(), report into each new
    build (as after shutdown() + configure(), or in a forked worker), observable
    callbacks included, histogram bucket advice kept."""
    first = Capture("follow1")  # installs the global provider (if not yet)
    meter = otel_metrics.get_meter("lib.follow", "1.0")
    assert isinstance(otel_metrics.get_meter_provider(), global_providers.FollowingMeterProvider)
    assert otel_metrics.get_meter("lib.follow", "1.0") is meter  # one meter per scope
    counter = meter.create_counter("lib_widgets")
    assert meter.create_counter("lib_widgets") is counter  # one instrument per definition
    updown = meter.create_up_down_counter("lib_inflight")
    histogram = meter.create_histogram(
        "lib_latency", "s", explicit_bucket_boundaries_advisory=[0.1, 1.0]
    )
    gauge = meter.create_gauge("lib_temperature")
    observed: list[int] = []

    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        observed.append(1)
        return [Observation(len(observed))]

    meter.create_observable_counter("lib_observed_counter", [observe])
    meter.create_observable_gauge("lib_observed_gauge", [observe])
    meter.create_observable_up_down_counter("lib_observed_updown", [observe])
    try:
        for capture in (first, None):
            cap = capture or Capture("follow2")
            try:
                counter.add(2, {"k": "v"})
                updown.add(-3)
                histogram.record(0.5)
                assert cap.metric_value("lib_widgets", k="v") == 2
                assert cap.metric_value("lib_inflight") == -3
                (point,) = cap.metric_points("lib_latency")
                assert isinstance(point, HistogramDataPoint)
                assert point.count == 1 and tuple(point.explicit_bounds) == (0.1, 1.0)
                # set right before the read: SDK 1.44 reports a gauge value at one
                # collection only (each metric_value() above is a collection)
                gauge.set(21.5)
                assert cap.metric_value("lib_temperature") == 21.5
                for name in ("lib_observed_counter", "lib_observed_gauge", "lib_observed_updown"):
                    assert cap.metric_points(name), name
            finally:
                cap.close()
    finally:
        first.close()
