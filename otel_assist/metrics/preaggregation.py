"""Metric instruments aggregated in plain Python, handed to every reader as SDK data.

One synchronous measurement through the OpenTelemetry SDK costs several microseconds (a
``Measurement`` object, attribute validation, a frozenset key, exemplar filtering, a
lock); the HTTP server path records three per request and a queue round trip seven, which
would cost more than the overhead targets allow (``bench/http_overhead.py``,
``bench/queue_overhead.py``). The instruments here cost one tuple, one dict lookup and a
few arithmetic operations under an uncontended lock.

At collection time each instrument's series become public data-model objects of
``opentelemetry.sdk.metrics.export`` (``Metric`` with ``Sum``, ``Gauge`` or
``Histogram`` data, cumulative temporality), added to what a reader collects from its
MeterProvider (:func:`otel_assist._otel_compat.attach_metric_producer`), so ``/metrics``,
OTLP and an ``InMemoryMetricReader`` all see them. Nothing in the SDK's own aggregation is
touched.

Consistency: each instrument has one lock. A measurement updates its series (for a
histogram: bucket count, count, sum, min, max) entirely under it, and a collection copies
every series under it, so a reader never sees a count that disagrees with its bucket
counts or its sum.

Keys: a call site's attribute mapping is looked up by its items, so values that compare
equal (``1``, ``1.0``, ``True``) share the series of the first one seen, as they share an
SDK series (the SDK keys by ``frozenset(attributes.items())``).

Bounded: series are keyed by the *folded* attributes (the allowlist of
:mod:`otel_assist.metrics`), so the series count is bounded by the allowlist; the
call-site key cache in front of it is capped too. Values the SDK would refuse are dropped
here as well: negative or non-finite counter increments and histogram values, non-finite
gauge values.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
)

Attributes = Mapping[str, Any]
Fold = Callable[[Attributes], dict[str, Any]]
#: Distinct call-site keys remembered per instrument (beyond it, lookups fold each time).
KEY_CACHE_LIMIT = 10_000
#: Longer attribute names or values are folded on every call instead of being cached (they
#: fold to ``_other`` anyway, and a cache of 10,000 huge strings would be a memory leak).
KEY_TEXT_LIMIT = 256
_INF = math.inf
_CUMULATIVE = AggregationTemporality.CUMULATIVE


def keep_allowed_types(attributes: Attributes) -> dict[str, Any]:
    """The default fold: keeps str/bool/int/float values (what OpenTelemetry accepts as
    scalar attribute values), drops the rest. The catalog passes its allowlist instead."""
    return {str(k): v for k, v in attributes.items() if isinstance(v, str | bool | int | float)}


def _small(attributes: Attributes) -> bool:
    return all(
        (not isinstance(k, str) or len(k) <= KEY_TEXT_LIMIT)
        and (not isinstance(v, str) or len(v) <= KEY_TEXT_LIMIT)
        for k, v in attributes.items()
    )


class _Series:
    __slots__ = ("attributes", "value")

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        self.value: float = 0


class _HistogramSeries:
    __slots__ = ("attributes", "bucket_counts", "count", "max", "min", "sum")

    def __init__(self, attributes: dict[str, Any], buckets: int) -> None:
        self.attributes = attributes
        self.bucket_counts = [0] * (buckets + 1)
        self.count = 0
        self.sum: float = 0.0
        self.min = _INF
        self.max = -_INF


S = TypeVar("S", _Series, _HistogramSeries)


class _Instrument(Generic[S]):
    """Series of one instrument, found by call-site key, stored by folded attributes."""

    kind = ""

    def __init__(self, name: str, unit: str, description: str, fold: Fold | None) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self._fold: Fold = fold or keep_allowed_types
        self._lock = threading.Lock()
        self._by_key: dict[Hashable, S] = {}
        self._series: dict[frozenset[tuple[str, Any]], S] = {}
        #: Replaced by reset(): bound handles compare it by identity to know their series
        #: is still the one collected.
        self.generation = object()

    def _new(self, attributes: dict[str, Any]) -> S:
        raise NotImplementedError

    def _lookup(self, attributes: Attributes | None) -> S:
        """The series for a call site's attribute mapping (fast when seen before)."""
        try:
            return self._by_key[tuple(attributes.items()) if attributes else ()]
        except Exception:  # new, or a value that cannot be hashed (folded away below)
            return self.series(attributes or {})

    def series(self, attributes: Attributes, key: Hashable | None = None) -> S:
        """The series ``attributes`` fold to, created on first use. ``key`` (default: the
        mapping's items) is remembered so the next lookup with it skips the fold."""
        with self._lock:
            if key is None:
                try:
                    key = tuple(attributes.items())
                    hash(key)
                except Exception:
                    key = None
            found = self._by_key.get(key) if key is not None else None
            if found is not None:
                return found
            folded = self._fold(attributes)
            canonical = frozenset(folded.items())
            series = self._series.get(canonical)
            if series is None:
                series = self._series[canonical] = self._new(folded)
            if (
                key is not None
                and len(self._by_key) < KEY_CACHE_LIMIT
                and _small(attributes)  # the cache keeps its keys: no huge values in it
            ):
                self._by_key[key] = series
            return series

    def keyed(self, key: Hashable, attributes: Callable[[Hashable], Attributes]) -> S:
        """The series for a caller-built ``key`` (a tuple of raw values, say), building the
        attribute mapping with ``attributes(key)`` only when the key is not known."""
        found = self._by_key.get(key)
        return found if found is not None else self.series(attributes(key), key)

    def reset(self) -> None:
        """Forget every series (a new process after fork, a new configure())."""
        with self._lock:
            self._by_key = {}
            self._series = {}
            self.generation = object()

    def _after_fork(self) -> None:
        # A thread of the parent may have held the lock at fork time; the child has only
        # the forking thread, so it would stay locked forever.
        self._lock = threading.Lock()

    def _snapshot(self) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def collect(self, start_ns: int, now_ns: int) -> Metric | None:
        raise NotImplementedError


class Counter(_Instrument[_Series]):
    """Monotonic sum (``add`` refuses negative and non-finite increments)."""

    kind = "counter"
    monotonic = True

    def _new(self, attributes: dict[str, Any]) -> _Series:
        return _Series(attributes)

    def add(self, amount: float, attributes: Attributes | None = None) -> None:
        # The hot path, inlined (each call saved is ~5% of this method): the check comes
        # before the lookup, so a refused value creates no series.
        if not 0 <= amount < _INF:  # also False for NaN
            return
        try:
            series = self._by_key[tuple(attributes.items()) if attributes else ()]
        except Exception:
            series = self.series(attributes or {})
        with self._lock:
            series.value += amount

    def bind(self, attributes: Attributes) -> BoundCounter:
        """A handle on the series ``attributes`` fold to, for a call site that adds to it
        again and again (see :class:`BoundCounter`)."""
        return BoundCounter(self, attributes)

    def add_in(self, series: _Series, amount: float) -> None:
        """Add to a series found with :meth:`series` / :meth:`keyed`."""
        if not 0 <= amount < _INF:
            return
        with self._lock:
            series.value += amount

    def _snapshot(self) -> list[tuple[Any, ...]]:
        with self._lock:
            return [(s.attributes, s.value) for s in self._series.values()]

    def collect(self, start_ns: int, now_ns: int) -> Metric | None:
        rows = self._snapshot()
        if not rows:
            return None
        points = [
            NumberDataPoint(
                attributes=attrs, start_time_unix_nano=start_ns, time_unix_nano=now_ns, value=v
            )
            for attrs, v in rows
        ]
        return Metric(
            name=self.name,
            description=self.description,
            unit=self.unit,
            data=Sum(
                data_points=points,
                aggregation_temporality=_CUMULATIVE,
                is_monotonic=self.monotonic,
            ),
        )


class UpDownCounter(Counter):
    """Sum that may go down (requests in flight)."""

    kind = "updown"
    monotonic = False

    def add(self, amount: float, attributes: Attributes | None = None) -> None:
        if not -_INF < amount < _INF:
            return
        series = self._lookup(attributes)
        with self._lock:
            series.value += amount

    def add_in(self, series: _Series, amount: float) -> None:
        if not -_INF < amount < _INF:
            return
        with self._lock:
            series.value += amount


class LastValue(_Instrument[_Series]):
    """Gauge: the last value set per series."""

    kind = "gauge"

    def _new(self, attributes: dict[str, Any]) -> _Series:
        return _Series(attributes)

    def set(self, value: float, attributes: Attributes | None = None) -> None:
        if not -_INF < value < _INF:
            return
        series = self._lookup(attributes)
        with self._lock:
            series.value = value

    def _snapshot(self) -> list[tuple[Any, ...]]:
        with self._lock:
            return [(s.attributes, s.value) for s in self._series.values()]

    def collect(self, start_ns: int, now_ns: int) -> Metric | None:
        rows = self._snapshot()
        if not rows:
            return None
        points = [
            NumberDataPoint(
                attributes=attrs, start_time_unix_nano=start_ns, time_unix_nano=now_ns, value=v
            )
            for attrs, v in rows
        ]
        return Metric(
            name=self.name,
            description=self.description,
            unit=self.unit,
            data=Gauge(data_points=points),
        )


class ExplicitHistogram(_Instrument[_HistogramSeries]):
    """Histogram with explicit bucket boundaries (a value equal to a boundary counts in
    the bucket it closes, as in the SDK)."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        fold: Fold | None,
        boundaries: Sequence[float],
    ) -> None:
        super().__init__(name, unit, description, fold)
        self.boundaries = tuple(float(b) for b in boundaries)

    def _new(self, attributes: dict[str, Any]) -> _HistogramSeries:
        return _HistogramSeries(attributes, len(self.boundaries))

    def record(self, value: float, attributes: Attributes | None = None) -> None:
        # The hot path, inlined as in Counter.add.
        if not 0 <= value < _INF:  # the SDK refuses negative values; NaN fails both tests
            return
        try:
            series = self._by_key[tuple(attributes.items()) if attributes else ()]
        except Exception:
            series = self.series(attributes or {})
        index = bisect_left(self.boundaries, value)
        with self._lock:
            series.bucket_counts[index] += 1
            series.count += 1
            series.sum += value
            if value < series.min:
                series.min = value
            if value > series.max:
                series.max = value

    def record_keyed(
        self, key: Hashable, attributes: Callable[[Hashable], Attributes], value: float
    ) -> None:
        """``record_in(keyed(key, attributes), value)`` in one call (the HTTP hot path)."""
        if not 0 <= value < _INF:
            return
        series = self._by_key.get(key)
        if series is None:
            series = self.series(attributes(key), key)
        index = bisect_left(self.boundaries, value)
        with self._lock:
            series.bucket_counts[index] += 1
            series.count += 1
            series.sum += value
            if value < series.min:
                series.min = value
            if value > series.max:
                series.max = value

    def bind(self, attributes: Attributes) -> BoundHistogram:
        """A handle on the series ``attributes`` fold to (see :class:`BoundHistogram`)."""
        return BoundHistogram(self, attributes)

    def record_in(self, series: _HistogramSeries, value: float) -> None:
        """Record into a series found with :meth:`series` / :meth:`keyed`."""
        if not 0 <= value < _INF:
            return
        index = bisect_left(self.boundaries, value)
        with self._lock:
            series.bucket_counts[index] += 1
            series.count += 1
            series.sum += value
            if value < series.min:
                series.min = value
            if value > series.max:
                series.max = value

    def _snapshot(self) -> list[tuple[Any, ...]]:
        with self._lock:
            return [
                (s.attributes, s.count, s.sum, list(s.bucket_counts), s.min, s.max)
                for s in self._series.values()
                if s.count
            ]

    def collect(self, start_ns: int, now_ns: int) -> Metric | None:
        rows = self._snapshot()
        if not rows:
            return None
        points = [
            HistogramDataPoint(
                attributes=attrs,
                start_time_unix_nano=start_ns,
                time_unix_nano=now_ns,
                count=count,
                sum=total,
                bucket_counts=buckets,
                explicit_bounds=self.boundaries,
                min=lo,
                max=hi,
            )
            for attrs, count, total, buckets, lo, hi in rows
        ]
        return Metric(
            name=self.name,
            description=self.description,
            unit=self.unit,
            data=Histogram(data_points=points, aggregation_temporality=_CUMULATIVE),
        )


AnyInstrument = Counter | UpDownCounter | LastValue | ExplicitHistogram


class _Bound(Generic[S]):
    """One series of one instrument resolved once, for a call site that always uses the
    same attributes (a queue's push count, say): a measurement skips building the key
    tuple and the lookup, which is most of the mapping-taking call. After the instrument's
    ``reset()`` the series is looked up again on the next call, so nothing is recorded
    into a forgotten series."""

    __slots__ = ("_attributes", "_generation", "_instrument", "_series")

    def __init__(self, instrument: _Instrument[S], attributes: Attributes) -> None:
        self._instrument: _Instrument[S] = instrument
        self._attributes = dict(attributes)
        self._generation = instrument.generation
        self._series: S = instrument.series(self._attributes)

    def _rebind(self) -> S:
        inst = self._instrument
        self._generation = inst.generation
        self._series = inst.series(self._attributes)
        return self._series


class BoundCounter(_Bound[_Series]):
    """A counter series resolved once (see :class:`_Bound`)."""

    __slots__ = ("_low",)

    def __init__(self, instrument: Counter, attributes: Attributes) -> None:
        super().__init__(instrument, attributes)
        # What the instrument's own add() refuses: negative increments on a monotonic sum.
        self._low = 0 if instrument.monotonic else -_INF

    def add(self, amount: float = 1) -> None:
        if not self._low <= amount < _INF:
            return
        inst = self._instrument
        series = self._series
        if self._generation is not inst.generation:
            series = self._rebind()
        with inst._lock:
            series.value += amount


class BoundHistogram(_Bound[_HistogramSeries]):
    """A histogram series resolved once (see :class:`_Bound`)."""

    __slots__ = ("_boundaries",)

    def __init__(self, instrument: ExplicitHistogram, attributes: Attributes) -> None:
        super().__init__(instrument, attributes)
        self._boundaries = instrument.boundaries

    def record(self, value: float) -> None:
        if not 0 <= value < _INF:
            return
        inst = self._instrument
        series = self._series
        if self._generation is not inst.generation:
            series = self._rebind()
        index = bisect_left(self._boundaries, value)
        with inst._lock:
            series.bucket_counts[index] += 1
            series.count += 1
            series.sum += value
            if value < series.min:
                series.min = value
            if value > series.max:
                series.max = value


class Aggregates:
    """A set of pre-aggregated instruments and their collection.

    ``collect()`` returns ``(scope name, metrics)`` pairs for
    :func:`otel_assist._otel_compat.attach_metric_producer`; ``reset()`` starts every
    series again from nothing with a new start time (cumulative sums restart).
    """

    def __init__(self) -> None:
        self.instruments: list[tuple[str, AnyInstrument]] = []
        self.start_ns = time.time_ns()
        _registries.add(self)

    def add(self, scope: str, instrument: AnyInstrument) -> AnyInstrument:
        self.instruments.append((scope, instrument))
        return instrument

    def collect(self) -> list[tuple[str, list[Metric]]]:
        now = time.time_ns()
        by_scope: dict[str, list[Metric]] = {}
        for scope, instrument in self.instruments:
            metric = instrument.collect(self.start_ns, now)
            if metric is not None:
                by_scope.setdefault(scope, []).append(metric)
        return list(by_scope.items())

    def reset(self) -> None:
        for _scope, instrument in self.instruments:
            instrument.reset()
        self.start_ns = time.time_ns()


_registries: weakref.WeakSet[Aggregates] = weakref.WeakSet()


def _renew_locks_after_fork() -> None:
    for registry in list(_registries):
        for _scope, instrument in registry.instruments:
            instrument._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_locks_after_fork)
