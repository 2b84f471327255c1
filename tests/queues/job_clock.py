"""The clock the job tests give the tracker, and a sweep on demand.

The tracker reads time only through its injectable clock (otel_assist/jobs/tracker.py), so
a test steps past a max runtime or through a paused stretch instead of sleeping through it.
Wall time stays real unless a test steps it: APScheduler's own fire times are real.
"""

from __future__ import annotations

import time

from otel_assist.jobs import JobTracker, SweepNow


class SteppedClock:
    """``offset`` is added to monotonic time (runtimes), ``wall_offset`` to wall time (due
    times compared against APScheduler's next run times)."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.wall_offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def time(self) -> float:
        return time.time() + self.wall_offset


def sweep_now(tracker: JobTracker) -> None:
    """Run one sweep on the tracker thread and wait until it is done."""
    tracker.put(SweepNow())
    assert tracker.wait_idle()
