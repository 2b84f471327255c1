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
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation

# SDK internals for the batched replay (see _replay); None in another SDK layout, and then
# the public path is used. Why they are needed: otel_assist._otel_compat.
from otel_assist._otel_compat import ExplicitBucketHistogramAggregation as _ExplicitBucket
from otel_assist._otel_compat import Measurement
from otel_assist._otel_compat import hash_attributes as _hash_attributes
from otel_assist.metrics import instruments as metrics

FLUSH_AT = 1024
#: Passed to the SDK so it does not look the current context up per value (replayed values
#: have no context of their own; exemplars need a sampled span, and tracing is off).
_CONTEXT = Context({"otel_assist.hot_path": True})


class HotPath:
    """Process-wide buffer of counter increments and histogram values."""

    def __init__(self) -> None:
        # One lock-free queue for both kinds: deque.append and popleft are atomic, the
        # hot path only appends and the flush only pops.
        self._items: deque[tuple[bool, Any, dict[str, Any], float]] = deque()
        # Held for a whole flush, so a collection waits for a background flush that has
        # already popped items but not yet replayed them (the hot path never takes it).
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._registered: weakref.WeakSet[Any] = weakref.WeakSet()

    # ------------------------------------------------------------------ hot path

    def add(self, instrument: Any, attributes: dict[str, Any], amount: float = 1) -> None:
        """Counter increment; ``attributes`` should be a pre-folded dict reused across
        calls (increments are summed per dict before they reach the SDK)."""
        items = self._items
        items.append((True, instrument, attributes, amount))
        if len(items) == FLUSH_AT:  # wake once per filling
            self._wake_flusher()

    def record(self, instrument: Any, attributes: dict[str, Any], value: float) -> None:
        """Histogram value (the replay keeps every value, so the histogram is exact)."""
        items = self._items
        items.append((False, instrument, attributes, value))
        if len(items) == FLUSH_AT:
            self._wake_flusher()

    # ------------------------------------------------------------------ replay

    def flush(self) -> None:
        """Replay everything buffered into the SDK instruments (any thread)."""
        with self._flush_lock:
            self._flush()

    def _flush(self) -> None:
        items = self._items
        counts: dict[tuple[int, int], list[Any]] = {}
        groups: dict[tuple[int, int], tuple[Any, dict[str, Any], list[float]]] = {}
        for _ in range(len(items)):  # only what is there now; later items wait
            try:
                is_counter, instrument, attributes, value = items.popleft()
            except IndexError:
                break
            key = (id(instrument), id(attributes))
            if is_counter:
                entry = counts.get(key)
                if entry is None:
                    counts[key] = [instrument, attributes, value]
                else:
                    entry[2] += value
                continue
            group = groups.get(key)
            if group is None:
                groups[key] = (instrument, attributes, [value])
            else:
                group[2].append(value)
        for instrument, attributes, amount in counts.values():
            with contextlib.suppress(Exception):
                instrument.add(amount, attributes, _CONTEXT)
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
    """Record ``batch`` into one SDK histogram series, exactly (count, sum, min, max and
    bucket counts as if each value had been passed to ``record()``).

    ``record()`` costs several microseconds per value (a Measurement with its attributes
    cleaned, a hash of the attributes, exemplar filtering, a lock), which is most of what
    queue instrumentation costs. For the SDK version this package pins
    (opentelemetry-sdk 1.45.2) and the explicit-bucket histograms of the catalog with
    cumulative temporality, the batch is folded into each reader's aggregation for the
    series under that aggregation's own lock - the same update ``aggregate()`` makes, once
    per batch instead of once per value. Anything else (another SDK layout, delta
    temporality, views that drop attributes, a series beyond the cardinality limit) goes
    through the public per-value path. Exemplars are not sampled for replayed values
    (tracing is off, so the default trace-based filter would not sample them anyway)."""
    try:
        targets = _targets(instrument, attributes, batch[0])
    except Exception:
        targets = None
    if targets is None:
        _replay_slow(instrument, attributes, batch)
        return
    measurement: Any = None
    for aggregation, match, skip_first in targets:
        values = batch[1:] if skip_first else batch
        if not values:
            continue
        if aggregation is None:  # this match takes the per-value path
            if measurement is None:
                measurement = Measurement(values[0], time.time_ns(), instrument, _CONTEXT,
                                          attributes)  # fmt: skip
            for value in values:
                object.__setattr__(measurement, "value", value)
                match.consume_measurement(measurement, False)
            continue
        boundaries = aggregation._boundaries
        with aggregation._lock:
            if aggregation._value is None:
                aggregation._value = aggregation._get_empty_bucket_counts()
            counts = aggregation._value
            for value in values:
                counts[bisect_left(boundaries, value)] += 1
            aggregation._sum += sum(values)
            if aggregation._record_min_max:
                aggregation._min = min(aggregation._min, min(values))
                aggregation._max = max(aggregation._max, max(values))


def _targets(
    instrument: Any, attributes: dict[str, Any], first: float
) -> list[tuple[Any, Any, bool]] | None:
    """Per reader view: (aggregation to fold into or None for per-value, the view match,
    whether the batch's first value was already consumed). None: use the public path.

    A series seen for the first time is created through the SDK itself by consuming the
    batch's first value (so overflow beyond the cardinality limit and aggregation choice
    stay the SDK's); nothing is consumed before every view match is known to qualify."""
    if _ExplicitBucket is None or _hash_attributes is None or Measurement is None:
        return None
    if not instrument._is_enabled():
        return None
    matches = [
        match
        for storage in instrument._measurement_consumer._reader_storages.values()
        for match in storage._get_or_init_view_instrument_match(instrument)
    ]
    if any(m._reset_on_collect or m._view._attribute_keys is not None for m in matches):
        return None
    key = _hash_attributes(dict(attributes))
    out: list[tuple[Any, Any, bool]] = []
    for match in matches:
        aggregation = match._attributes_aggregation.get(key)
        skip_first = False
        if aggregation is None:
            m = Measurement(first, time.time_ns(), instrument, _CONTEXT, attributes)
            match.consume_measurement(m, False)
            aggregation = match._attributes_aggregation.get(key)  # None: overflowed
            skip_first = True
        if aggregation is not None and type(aggregation) is not _ExplicitBucket:
            aggregation = None
        out.append((aggregation, match, skip_first))
    return out


def _replay_slow(instrument: Any, attributes: dict[str, Any], batch: list[float]) -> None:
    """The public path, one SDK measurement per value."""
    for i, value in enumerate(batch):
        if i % 16 == 15:
            time.sleep(0)  # let a waiting event loop have the GIL (see history.py)
        instrument.record(value, attributes, _CONTEXT)


hot_path = HotPath()
