"""Time windows over hourly rollups: full hours come from the rollup, the partial first
hour from the raw table, so "last N hours" is exact and still cheap at any table size."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

HOUR = timedelta(hours=1)


def hour_floor(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def hour_ceil(ts: datetime) -> datetime:
    floor = hour_floor(ts)
    return floor if floor == ts else floor + HOUR


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
        return 0.0, 1.0
    return 2 ** ((bucket - 2) / BUCKETS_PER_OCTAVE), 2 ** ((bucket - 1) / BUCKETS_PER_OCTAVE)


def histogram_quantile(counts: dict[int, int], q: float) -> float | None:
    """percentile_cont-style quantile from a bucket histogram, interpolating in the bucket."""
    total = sum(c for c in counts.values() if c > 0)
    if total == 0:
        return None
    rank = q * (total - 1)  # 0-based position, as percentile_cont uses
    seen = 0
    for bucket in sorted(counts):
        c = counts[bucket]
        if c <= 0:
            continue
        if rank < seen + c:
            lo, hi = bucket_bounds(bucket)
            frac = (rank - seen + 0.5) / c
            return lo + (hi - lo) * frac
        seen += c
    lo, hi = bucket_bounds(max(b for b, c in counts.items() if c > 0))
    return hi


def interpolate_cont(values: list[float], pos: float) -> float:
    """percentile_cont between the two values around a 0-based fractional position."""
    lo = math.floor(pos)
    if len(values) == 1:
        return float(values[0])
    return float(values[0]) + (float(values[1]) - float(values[0])) * (pos - lo)
