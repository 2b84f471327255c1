"""Time windows over hourly rollups: whole hours come from the rollup and at most half an
hour of raw rows corrects the window's first hour, so "last N hours" is exact and its raw
part is bounded by half an hour of history whatever the table size (see ``split_window``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

HOUR = timedelta(hours=1)


def hour_floor(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def hour_ceil(ts: datetime) -> datetime:
    floor = hour_floor(ts)
    return floor if floor == ts else floor + HOUR


@dataclass(frozen=True)
class WindowSplit:
    """A window ``[since, ...)`` as rollup hours plus a signed raw-row correction:
    count the rollup's hours ``>= rollup_from``, then add (``sign`` +1) or subtract
    (``sign`` -1) the raw rows with ``raw_from <= created_at < raw_to``."""

    rollup_from: datetime
    raw_from: datetime
    raw_to: datetime
    sign: int


def split_window(since: datetime) -> WindowSplit:
    """The cheaper way to count the window's partial first hour exactly.

    With ``since`` at minute m of hour h, the rows of ``[since, h + 1)`` are either read
    from the raw table (60 - m minutes of rows) or taken as the rollup's hour h minus
    the raw rows of ``[h, since)`` (m minutes of rows): the shorter side is read, so a
    stats query never reads more than half an hour of raw rows. Reading the whole partial
    hour made the stats cost swing with the minute of the request (at 1M rows a week,
    2.2-2.4x the small table's cost at minute 55, 1.4-1.7x at minute 25-30). The rollup
    is maintained in the ingest transaction, so rollup hour h equals h's raw rows.
    """
    floor = hour_floor(since)
    if floor == since:
        return WindowSplit(since, since, since, 1)
    ceil = floor + HOUR
    if since - floor < ceil - since:
        return WindowSplit(floor, floor, since, -1)
    return WindowSplit(ceil, since, ceil, 1)


#: Durations are bucketed on a log scale with this many buckets per doubling, so a p95
#: read from the histogram is within 2**(1/16) - 1 = 4.4% of the exact value.
BUCKETS_PER_OCTAVE = 16


def duration_bucket(duration_ms: int | None) -> int | None:
    """Bucket 0 holds 0 ms; bucket b >= 1 holds (2**((b-1)/16), 2**(b/16)] ms."""
    if duration_ms is None:
        return None
    if duration_ms <= 0:
        return 0
    return max(1, math.ceil(BUCKETS_PER_OCTAVE * math.log2(duration_ms)) + 1)


def bucket_bounds(bucket: int) -> tuple[float, float]:
    if bucket <= 0:
        return 0.0, 0.0
    if bucket == 1:
        return 1.0, 1.0
    return 2 ** ((bucket - 2) / BUCKETS_PER_OCTAVE), 2 ** ((bucket - 1) / BUCKETS_PER_OCTAVE)


def _value_at_rank(ordered: list[tuple[int, int]], rank: int) -> float:
    """Estimate of the ``rank``-th smallest value (0-based): spread evenly in its bucket."""
    seen = 0
    for bucket, count in ordered:
        if rank < seen + count:
            lo, hi = bucket_bounds(bucket)
            return lo + (hi - lo) * (rank - seen + 0.5) / count
        seen += count
    return bucket_bounds(ordered[-1][0])[1]


def histogram_quantile(counts: dict[int, int], q: float) -> float | None:
    """percentile_cont from a bucket histogram: the two values around position q*(n-1)
    are each estimated inside their bucket (error < one bucket width, 4.4%) and then
    interpolated exactly as percentile_cont does."""
    ordered = sorted((b, c) for b, c in counts.items() if c > 0)
    total = sum(c for _, c in ordered)
    if total == 0:
        return None
    pos = q * (total - 1)
    lo_rank = math.floor(pos)
    low = _value_at_rank(ordered, lo_rank)
    if lo_rank + 1 >= total:
        return low
    high = _value_at_rank(ordered, lo_rank + 1)
    return low + (high - low) * (pos - lo_rank)


def interpolate_cont(values: list[float], pos: float) -> float:
    """percentile_cont between the two values around a 0-based fractional position."""
    lo = math.floor(pos)
    if len(values) == 1:
        return float(values[0])
    return float(values[0]) + (float(values[1]) - float(values[0])) * (pos - lo)
