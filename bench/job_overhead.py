"""job_overhead: microseconds a tracked run of a no-op job adds, and the ratio to an
untracked run.

Both variants go through APScheduler 3.x's own ``run_job`` (what every executor calls per
run: misfire check, the call, the executed event), on Job objects of a real
BackgroundScheduler - one job plain, one wrapped by ``track_scheduler``. Each round of the
tracked variant ends with ``tracker.wait_idle()``, so the tracker thread's share (metrics,
log filtering, history events handed to a real ``HistoryShipper`` whose sender "sends" to
an in-process transport answering 200) is inside the measured time, not hidden on another
thread. Rounds alternate; figures are medians. Log level WARNING in both (APScheduler's
own per-run INFO lines would otherwise dominate both).
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from apscheduler.executors.base import run_job
from apscheduler.schedulers.background import BackgroundScheduler

import otel_assist
from bench import BenchResult
from otel_assist.history.shipper import HistorySettings, HistoryShipper
from otel_assist.jobs import JobTracker, track_scheduler

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "10"))
RUNS = int(os.environ.get("BENCH_JOB_RUNS", "3000"))


def noop() -> None:
    return None


def noop_tracked() -> None:
    return None


IN_JOB: list[float] = []


def round_us(job: Any, n: int, tracker: JobTracker | None) -> float:
    now = datetime.now(UTC)
    start = time.perf_counter()
    for _ in range(n):
        events = run_job(job, "default", [now], "apscheduler.executors.default")
        assert events and events[0].exception is None
    if tracker is not None:
        IN_JOB.append((time.perf_counter() - start) / n * 1e6)
        assert tracker.wait_idle(30)
    return (time.perf_counter() - start) / n * 1e6


def run() -> BenchResult:
    otel_assist.configure(
        "bench-jobs", logs_exporters=(), metrics_exporters=("prometheus",), log_level="WARNING"
    )
    shipper = HistoryShipper(
        # A flood of 3,000 runs per round is far beyond any cron load; the buffer is sized
        # so the benchmark measures tracking, not the (counted) drops of a full buffer.
        HistorySettings(
            url="http://history.invalid/api/v1", flush_interval_s=0.2, buffer_size=10**6
        ),
        transport=httpx.MockTransport(lambda _r: httpx.Response(200, json={})),
    )
    scheduler = BackgroundScheduler()
    scheduler.add_job(noop, "interval", hours=1, id="plain", misfire_grace_time=None)
    tracker = track_scheduler(scheduler, shipper=shipper, grace=3600, sweep_interval=3600)
    scheduler.add_job(noop_tracked, "interval", hours=1, id="tracked_7", misfire_grace_time=None)
    scheduler.start(paused=True)  # jobs are added (and wrapped) on start; none runs
    plain = scheduler.get_job("plain")
    tracked = scheduler.get_job("tracked_7")
    plain.func = noop  # track_scheduler wraps every job: undo it for the baseline
    assert getattr(tracked.func, "__wrapped__", None) is noop_tracked
    round_us(plain, 200, None)
    round_us(tracked, 200, tracker)
    ours: list[float] = []
    base: list[float] = []
    for i in range(ROUNDS):
        if i % 2 == 0:
            ours.append(round_us(tracked, RUNS, tracker))
            base.append(round_us(plain, RUNS, None))
        else:
            base.append(round_us(plain, RUNS, None))
            ours.append(round_us(tracked, RUNS, tracker))
    scheduler.shutdown(wait=False)
    assert shipper.flush(60)
    shipper.shutdown()
    tracker.shutdown()
    ours_us, base_us = statistics.median(ours), statistics.median(base)
    print(f"job_overhead: rounds={ROUNDS} x {RUNS} runs through apscheduler run_job")
    print(f"  untracked run: {base_us:.2f} us, tracked run: {ours_us:.2f} us")
    print(f"  added per tracked run: {ours_us - base_us:.2f} us (all threads, tracker included)")
    in_job = statistics.median(IN_JOB[1:])
    print(f"  of which on the job's own thread: {in_job - base_us:.2f} us")
    stats = {outcome: n for (_kind, outcome), n in shipper.stats.items()}
    print(f"  history events: {stats} (2 per run: started, completed)")
    return BenchResult(
        name="job_overhead",
        ratio=ours_us / base_us,
        ours=ours_us,
        baseline=base_us,
        unit="us/run",
        target="report",
        extra={
            "added_us": ours_us - base_us,
            "added_on_job_thread_us": statistics.median(IN_JOB[1:]) - base_us,
            "rounds": ROUNDS,
            "runs": RUNS,
        },
    )
