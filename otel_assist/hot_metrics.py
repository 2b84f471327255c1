"""Deferred metric recording for per-message hot paths (queue push/pop, Redis commands).

One synchronous OpenTelemetry SDK measurement costs several microseconds (a
``Measurement`` object, attribute cleaning and hashing, the aggregation under a lock);
a queue round trip records seven of them, which alone would add half again to a raw
LPUSH + BRPOP on a local Redis. Here the hot path only appends to a buffer under an
uncontended lock (well under a microsecond); counter increments are summed per series.

The buffer is replayed into the *same* SDK instruments - so names, attributes, buckets
and exporters are exactly the catalog's - at two moments:

* when any metric reader collects (Prometheus scrape, OTLP export, a test's
  ``InMemoryMetricReader``): an observable callback registered on the catalog's meter
  runs before the SDK reads its synchronous storage, so a collection always includes
  everything recorded before it;
* when the buffer holds ``FLUSH_AT`` histogram values: a daemon thread replays them,
  during the event loop's I/O waits rather than inside the request.

Nothing is sampled or dropped: every value reaches its histogram.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation

from otel_assist import metrics

try:  # the SDK's measurement type, for the batched replay (see _replay)
    from opentelemetry.sdk.metrics._internal.measurement import Measurement
except ImportError:  # pragma: no cover - a different SDK layout: plain record()
    Measurement = None  # type: ignore[assignment,misc]

FLUSH_AT = 1024
#: Passed to the SDK so it does not look the current context up per value (replayed values
#: have no context of their own; exemplars need a sampled span, and tracing is off).
_CONTEXT = Context({"otel_assist.hot_path": True})


class HotPath:
    """Process-wide buffer of counter increments and histogram values."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[int, int], list[Any]] = {}
        self._values: deque[tuple[Any, dict[str, Any], float]] = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._registered: weakref.WeakSet[Any] = weakref.WeakSet()

    # ------------------------------------------------------------------ hot path

    def add(self, instrument: Any, attributes: dict[str, Any], amount: float = 1) -> None:
        """Counter increment; ``attributes`` must be a pre-folded dict reused across calls."""
        key = (id(instrument), id(attributes))
        with self._lock:
            entry = self._counts.get(key)
            if entry is None:
                self._counts[key] = [instrument, attributes, amount]
            else:
                entry[2] += amount

    def record(self, instrument: Any, attributes: dict[str, Any], value: float) -> None:
        """Histogram value; replayed one by one, so the SDK histogram is exact.

        Lock-free: ``deque.append`` and ``popleft`` are atomic, and the flush pops."""
        values = self._values
        values.append((instrument, attributes, value))
        if len(values) == FLUSH_AT:  # wake once per filling
            self._wake_flusher()

    # ------------------------------------------------------------------ replay

    def flush(self) -> None:
        """Replay everything buffered into the SDK instruments (any thread)."""
        with self._lock:
            counts, self._counts = self._counts, {}
        for instrument, attributes, amount in counts.values():
            with contextlib.suppress(Exception):
                instrument.add(amount, attributes, _CONTEXT)
        values = self._values
        groups: dict[tuple[int, int], tuple[Any, dict[str, Any], list[float]]] = {}
        for _ in range(len(values)):  # only what is there now; later values wait
            try:
                instrument, attributes, value = values.popleft()
            except IndexError:
                break
            key = (id(instrument), id(attributes))
            group = groups.get(key)
            if group is None:
                groups[key] = (instrument, attributes, [value])
            else:
                group[2].append(value)
        for instrument, attributes, batch in groups.values():
            with contextlib.suppress(Exception):
                _replay(instrument, attributes, batch)

    def ensure_registered(self, catalog: metrics.Catalog) -> None:
        """Make ``catalog``'s meter flush this buffer whenever a reader collects."""
        if catalog in self._registered:
            return
        self._registered.add(catalog)

        def on_collect(_options: CallbackOptions) -> Iterable[Observation]:
            self.flush()
            return ()

        with contextlib.suppress(Exception):
            catalog.meter.create_observable_gauge(
                "otel_assist.hot_path_flush",
                [on_collect],
                "1",
                "Internal: replays deferred hot-path measurements; never has data points.",
            )

    def _wake_flusher(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._flush_forever, name="otel-assist-hot-metrics", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def _flush_forever(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self.flush()


def _replay(instrument: Any, attributes: dict[str, Any], batch: list[float]) -> None:
    """Record ``batch`` into one SDK histogram series.

    The public ``record()`` builds a Measurement and cleans its attributes per value; here
    one Measurement per series is built (attributes cleaned once) and handed to the
    instrument's measurement consumer per value - the same path ``record()`` ends in, with
    the SDK's own locking and exemplar handling - which takes a third to a half off the
    per-value cost (see bench/README.md). Falls back to ``record()`` if the SDK's
    internals differ from opentelemetry-sdk 1.45 (the pinned version)."""
    consumer = getattr(instrument, "_measurement_consumer", None)
    enabled = getattr(instrument, "_is_enabled", None)
    if consumer is None or Measurement is None or (enabled is not None and not enabled()):
        for i, value in enumerate(batch):
            if i % 16 == 15:
                time.sleep(0)
            instrument.record(value, attributes, _CONTEXT)
        return
    measurement = Measurement(batch[0], time.time_ns(), instrument, _CONTEXT, attributes)
    for i, value in enumerate(batch):
        if i % 16 == 15:
            time.sleep(0)  # let a waiting event loop have the GIL (see history.py)
        object.__setattr__(measurement, "value", value)
        consumer.consume_measurement(measurement)


hot_path = HotPath()
