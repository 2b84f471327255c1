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
        for i in range(len(values)):  # only what is there now; later values wait
            if i % 16 == 15:
                time.sleep(0)  # let a waiting event loop have the GIL (see history.py)
            try:
                instrument, attributes, value = values.popleft()
            except IndexError:
                break
            with contextlib.suppress(Exception):
                instrument.record(value, attributes, _CONTEXT)

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


hot_path = HotPath()
