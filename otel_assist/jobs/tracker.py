"""The job tracker: the one thread that turns run and scheduler events into the
``job started/completed/failed`` lines, the ``cron_*`` metrics and the history rows.

Callers (the run wrapper in :mod:`otel_assist.jobs.decorator`, APScheduler's listener in
:mod:`otel_assist.jobs.apscheduler`) only put a typed event on a ``SimpleQueue``
(:class:`RunStarted`, :class:`RunEnded`, :class:`RunsSubmitted`,
:class:`SchedulerReport`); the end line, metrics, history and the sweeps of
:mod:`otel_assist.jobs.detection` run on the tracker's daemon thread, so tracking never
blocks the event loop of an AsyncIOScheduler, and an error in tracking never fails a job.
Time is read from an injectable :class:`Clock` (runtimes, timestamps and the sweep
schedule), so tests step past a max runtime instead of sleeping through it.

Every run is counted once in ``cron_jobs_total``, under the status its history row ends
with; docs/job-lifecycle.md is the table of statuses.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import threading
import time
import traceback
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from otel_assist.correlation import new_correlation_id
from otel_assist.history.payload import job_event
from otel_assist.history.shipper import HistoryShipper, default_shipper
from otel_assist.jobs.detection import Detection, _missed_run_id, _utc
from otel_assist.logs.configure import get_logger
from otel_assist.metrics import instruments as metrics
from otel_assist.settings import JobSettings

#: Statuses a run can end with; each run is counted once, under one of these.
RUN_STATUSES = ("completed", "failed", "timed_out", "missed", "skipped", "cancelled")
_log = get_logger("otel_assist.jobs")


class Clock(Protocol):
    """Where the tracker reads time: injectable so tests can step past a max runtime
    without sleeping through it."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    """The real clocks (``time.monotonic`` for runtimes, ``time.time`` for timestamps)."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)


@dataclass(frozen=True)
class JobMeta:
    job_id: str
    job_name: str
    job_type: str
    max_runtime: float | None
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Running:
    meta: JobMeta
    started_mono: float
    correlation_id: str
    timed_out: bool = False


# --------------------------------------------------------------------------- events
# What the cheap caller side (the run wrapper, APScheduler's listener) hands to the tracker
# thread: one small object per event on a SimpleQueue, typed, dispatched on its class.


@dataclass(slots=True)
class RunStarted:
    """A tracked run began (put by the wrapper, before the job's own code)."""

    run_id: str
    meta: JobMeta
    at: float  # wall clock, for history
    mono: float  # monotonic clock, for the max-runtime check
    correlation_id: str


@dataclass(slots=True)
class RunEnded:
    """A tracked run returned (``exc`` None) or raised."""

    run_id: str
    meta: JobMeta
    at: float
    duration_s: float
    exc: BaseException | None
    correlation_id: str


@dataclass(slots=True)
class RunsSubmitted:
    """APScheduler submitted runs of ``job_id`` due at ``run_times`` to an executor."""

    job_id: str
    run_times: list[datetime]


@dataclass(slots=True)
class SchedulerReport:
    """An APScheduler event the wrapper cannot see: missed, max instances, or the outcome
    of a run whose function is not wrapped (``code`` is APScheduler's event code)."""

    code: int
    job_id: str
    times: list[datetime]
    exception: BaseException | None


@dataclass(slots=True)
class SweepNow:
    """Run the detection sweep now (it also runs every ``sweep_interval``)."""


@dataclass(slots=True)
class Ping:
    """Processed after every event put before it: ``wait_idle`` and shutdown."""


TrackerEvent = RunStarted | RunEnded | RunsSubmitted | SchedulerReport | SweepNow | Ping


class MetaSource(Protocol):
    """What a tracked scheduler knows about its jobs (type, max runtime, kwargs)."""

    def meta(self, job: Any) -> JobMeta: ...


def run_outcome(exc: BaseException | None) -> str:
    """How a run that returned or raised ``exc`` ended: ``completed``, ``failed``, or
    ``cancelled`` for a BaseException that is not an Exception (``asyncio.CancelledError``
    from ``scheduler.shutdown()``, KeyboardInterrupt, SystemExit): those say the process
    stopped the run, not that the job is broken."""
    if exc is None:
        return "completed"
    return "failed" if isinstance(exc, Exception) else "cancelled"


def _error_text(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    return f"{type(exc).__name__}: {exc}"[:2000]


class JobTracker(Detection):
    """Receives run and scheduler events on a queue and does all the work on its thread
    (missed, skipped and stuck runs: :class:`~otel_assist.jobs.detection.Detection`)."""

    def __init__(
        self,
        *,
        shipper: HistoryShipper | None = None,
        settings: JobSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings or JobSettings.from_env()
        self.clock: Clock = clock or SystemClock()
        self._shipper = shipper
        self.events: queue.SimpleQueue[TrackerEvent] = queue.SimpleQueue()
        self.schedulers: list[tuple[Any, MetaSource]] = []
        self.running: dict[str, _Running] = {}
        self.consecutive: dict[str, int] = defaultdict(int)
        self._job_types: dict[str, str] = {}
        self._known_types: set[str] = set()
        self._pending: dict[str, deque[datetime]] = defaultdict(deque)
        self._unmatched_starts: dict[str, deque[str]] = defaultdict(deque)
        self._reported_missed: dict[tuple[str, datetime], float] = {}
        self._tracked_ids: dict[str, bool] = {}
        #: Meta of every job seen when it was added: a one-off job is gone from its
        #: scheduler by the time APScheduler reports it missed, but keeps its type.
        self._metas: dict[str, JobMeta] = {}
        self._done_early: dict[str, deque[datetime]] = defaultdict(lambda: deque(maxlen=100))
        self._attrs: dict[tuple[str, ...], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()
        self._idle = threading.Event()

    # ----------------------------------------------------------- caller side (cheap)

    def put(self, event: TrackerEvent) -> None:
        if self._pid != os.getpid():
            self._ensure_thread()
        self.events.put(event)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None:
                return
            self._pid = os.getpid()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="otel-assist-jobs", daemon=True)
            self._thread.start()

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Block until every event put so far is processed (tests, shutdown)."""
        self._idle.clear()
        self.put(Ping())  # FIFO: processed after everything put before it
        return self._idle.wait(timeout_s)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self.events.put(Ping())
        self._thread.join(timeout_s)
        self._thread = None
        self._pid = 0

    @property
    def shipper(self) -> HistoryShipper | None:
        shipper = self._shipper if self._shipper is not None else default_shipper()
        return shipper if shipper.enabled else None

    # ----------------------------------------------------------- tracker thread

    def _run(self) -> None:
        clock = self.clock
        next_sweep = clock.monotonic() + self.settings.sweep_interval_s
        while not self._stop.is_set():
            timeout = min(max(0.0, next_sweep - clock.monotonic()), self.settings.sweep_interval_s)
            try:
                event = self.events.get(timeout=timeout)
            except queue.Empty:
                event = None
            try:
                if event is not None:
                    self._handle(event)
                if clock.monotonic() >= next_sweep:
                    self.sweep()
                    next_sweep = clock.monotonic() + self.settings.sweep_interval_s
            except Exception as exc:  # tracking errors never leave this thread
                _log.warning("job tracker error", error=repr(exc))
            if isinstance(event, Ping):
                self._idle.set()

    def _handle(self, event: TrackerEvent) -> None:
        if isinstance(event, RunStarted):
            self._on_start(event)
        elif isinstance(event, RunEnded):
            self._on_end(event)
        elif isinstance(event, RunsSubmitted):
            self._on_submitted(event.job_id, event.run_times)
        elif isinstance(event, SchedulerReport):
            self._on_apscheduler(event.code, event.job_id, event.times, event.exception)
        elif isinstance(event, SweepNow):
            self.sweep()

    def _on_start(self, event: RunStarted) -> None:
        run_id, meta, at, correlation_id = event.run_id, event.meta, event.at, event.correlation_id
        # "job started" was logged by the wrapper, in the run's own context, so it comes
        # before the job's own lines.
        self.running[run_id] = _Running(meta, event.mono, correlation_id)
        self._known_types.add(meta.job_type)
        self._job_types[meta.job_id] = meta.job_type
        self._ship(run_id, meta, "started", at, correlation_id)
        pending = self._pending.get(meta.job_id)
        if pending:
            self._ship(run_id, meta, "scheduled", pending.popleft().timestamp(), correlation_id)
        else:
            self._unmatched_starts[meta.job_id].append(run_id)
            while len(self._unmatched_starts[meta.job_id]) > 100:
                self._unmatched_starts[meta.job_id].popleft()

    def _on_end(self, event: RunEnded) -> None:
        run_id, meta, at, exc = event.run_id, event.meta, event.at, event.exc
        duration_s, correlation_id = event.duration_s, event.correlation_id
        info = self.running.pop(run_id, None)
        timed_out = info is not None and info.timed_out
        outcome = run_outcome(exc)
        # Counted once per run: a timed-out run was counted when it timed out.
        if not timed_out:
            self._count(meta.job_type, outcome)
        cat = metrics.catalog()
        key = ("duration", meta.job_type)
        attrs = self._attrs.get(key)
        if attrs is None:
            attrs = self._fold_cached(key, "cron_job_duration", job_type=meta.job_type)
        cat["cron_job_duration"].raw.record(duration_s, attrs)
        fields: dict[str, Any] = {
            "event_type": "job_end",
            "correlation_id": correlation_id,
            "job_id": meta.job_id,
            "job_type": meta.job_type,
            "run_id": run_id,
            "status": "timed_out" if timed_out else outcome,
            "duration_s": round(duration_s, 6),
        }
        if outcome == "completed":
            self.consecutive[meta.job_id] = 0
            _log.info("job completed", **fields)
            self._ship(run_id, meta, "completed", at, correlation_id, duration_s=duration_s)
        elif outcome == "cancelled":
            _log.info("job cancelled", **fields, error=_error_text(exc))
            self._ship(
                run_id,
                meta,
                "cancelled",
                at,
                correlation_id,
                duration_s=duration_s,
                error=_error_text(exc),
            )
        else:
            assert exc is not None
            self.consecutive[meta.job_id] += 1
            tb = "".join(traceback.format_exception(exc))
            error = _error_text(exc)
            fields["event_type"] = "job_error"
            _log.error(
                "job failed",
                **fields,
                error=error,
                consecutive_failures=self.consecutive[meta.job_id],
                # The fields exc_info would give, without a console renderer formatting
                # the traceback (with locals) on this thread: APScheduler's own line with
                # the traceback is dropped for tracked jobs, so it is carried here.
                **{
                    "exception.type": type(exc).__qualname__,
                    "exception.message": str(exc),
                    "exception.stacktrace": tb,
                },
            )
            self._ship(
                run_id,
                meta,
                "failed",
                at,
                correlation_id,
                duration_s=duration_s,
                error=error,
                traceback=tb,
            )
        self._set_consecutive_gauge(meta.job_type)

    def _fold_cached(self, key: tuple[str, ...], name: str, **attrs: str) -> dict[str, Any]:
        folded = metrics.catalog()[name].attributes(**attrs)
        if len(self._attrs) < 10_000:
            self._attrs[key] = folded
        return folded

    def _count(self, job_type: str, status: str) -> None:
        """cron_jobs_total += 1, attributes folded once per (type, status)."""
        cat = metrics.catalog()
        key = ("count", job_type, status)
        attrs = self._attrs.get(key)
        if attrs is None:
            attrs = self._fold_cached(key, "cron_jobs", job_type=job_type, status=status)
        cat["cron_jobs"].raw.add(1, attrs)

    def _set_consecutive_gauge(self, job_type: str) -> None:
        worst = max(
            (
                n
                for job_id, n in self.consecutive.items()
                if self._job_types.get(job_id) == job_type
            ),
            default=0,
        )
        # Set on every run end, not only on change: configure() starts the catalog from
        # zero, and a pre-aggregated gauge set costs well under a microsecond.
        metrics.catalog()["cron_job_consecutive_failures"].set(worst, job_type=job_type)

    def _on_submitted(self, job_id: str, run_times: list[datetime]) -> None:
        pending = self._pending[job_id]
        starts = self._unmatched_starts.get(job_id)
        early = self._done_early.get(job_id)
        for due in run_times:
            due = _utc(due)
            if early and due in early:
                early.remove(due)
                continue
            if starts:
                run_id = starts.popleft()
                info = self.running.get(run_id)
                if info is not None:
                    self._ship(run_id, info.meta, "scheduled", due.timestamp(), info.correlation_id)
            else:
                pending.append(due)

    def _on_apscheduler(self, code: int, job_id: str, times: list[datetime], extra: Any) -> None:
        from apscheduler.events import (
            EVENT_JOB_ERROR,
            EVENT_JOB_EXECUTED,
            EVENT_JOB_MAX_INSTANCES,
            EVENT_JOB_MISSED,
        )

        if code in (EVENT_JOB_EXECUTED, EVENT_JOB_ERROR) and self._is_wrapped(job_id):
            return  # the wrapper reported this run already
        meta = self._meta_for(job_id)
        if code == EVENT_JOB_MISSED:
            for due in times:
                pending = self._pending.get(job_id)
                with contextlib.suppress(ValueError):
                    if pending:
                        pending.remove(_utc(due))
                self._missed(meta, _utc(due), "misfire reported by APScheduler")
        elif code == EVENT_JOB_MAX_INSTANCES:
            for due in times:
                self._skipped(meta, _utc(due))
        elif code in (EVENT_JOB_EXECUTED, EVENT_JOB_ERROR):
            # A job whose function is not wrapped (persistent store, not decorated).
            due = _utc(times[0])
            pending = self._pending.get(job_id)
            if pending and due in pending:
                pending.remove(due)  # it did start: not a missed run
            else:  # executed before its submission event was seen
                self._done_early[job_id].append(due)
            run_id = "run-" + _missed_run_id(job_id, due)[7:]
            exc = extra if code == EVENT_JOB_ERROR else None
            cid = new_correlation_id()
            self._ship(run_id, meta, "scheduled", due.timestamp(), cid)
            self._ship(run_id, meta, "started", due.timestamp(), cid)
            # Start time and duration are unknown without the wrapper: the run is counted,
            # its duration is not recorded.
            self._count(meta.job_type, run_outcome(exc))
            self._end_history(run_id, meta, exc, cid)

    def _end_history(self, run_id: str, meta: JobMeta, exc: BaseException | None, cid: str) -> None:
        outcome = run_outcome(exc)
        now = self.clock.time()
        if outcome == "completed":
            self.consecutive[meta.job_id] = 0
            self._ship(run_id, meta, "completed", now, cid)
        elif outcome == "cancelled":
            self._ship(run_id, meta, "cancelled", now, cid, error=_error_text(exc))
        else:
            assert exc is not None
            self.consecutive[meta.job_id] += 1
            tb = "".join(traceback.format_exception(exc))
            self._ship(run_id, meta, "failed", now, cid, error=_error_text(exc), traceback=tb)
        self._job_types[meta.job_id] = meta.job_type
        self._set_consecutive_gauge(meta.job_type)

    def _is_wrapped(self, job_id: str) -> bool:
        return self._tracked_ids.get(job_id, True)

    def reports_runs_of(self, job_id: str) -> bool:
        """True when this tracker's wrapper reports the runs of ``job_id`` itself."""
        return self._tracked_ids.get(job_id, False)

    def tracked_jobs(self) -> list[tuple[Any, JobMeta]]:
        """Every job of every tracked scheduler with its meta (``job.trigger`` is its
        schedule): the one place to learn what is tracked, e.g. to register monitors."""
        found: list[tuple[Any, JobMeta]] = []
        for scheduler, opts in self.schedulers:
            with contextlib.suppress(Exception):  # a scheduler being shut down
                found.extend((job, opts.meta(job)) for job in scheduler.get_jobs())
        return found

    def _meta_for(self, job_id: str) -> JobMeta:
        for scheduler, opts in self.schedulers:
            with contextlib.suppress(Exception):
                job = scheduler.get_job(job_id)
                if job is not None:
                    return opts.meta(job)
        known = self._metas.get(job_id)
        if known is not None:
            return known
        job_type = self._job_types.get(job_id) or _default_job_type(job_id)
        return JobMeta(job_id, job_id, job_type, None)

    def remember(self, job: Any, opts: MetaSource) -> None:
        """Keep a job's meta from when it was added (bounded)."""
        with contextlib.suppress(Exception):
            if len(self._metas) >= 10_000 and job.id not in self._metas:
                self._metas.pop(next(iter(self._metas)))
            self._metas[job.id] = opts.meta(job)

    def _ship(
        self,
        run_id: str,
        meta: JobMeta,
        kind: str,
        at: float,
        correlation_id: str,
        *,
        duration_s: float | None = None,
        error: str | None = None,
        traceback: str | None = None,
    ) -> None:
        shipper = self.shipper
        if shipper is None:
            return
        event = job_event(
            run_id=run_id,
            kind=kind,
            job_id=meta.job_id,
            job_name=meta.job_name,
            job_type=meta.job_type,
            at=at,
            correlation_id=correlation_id,
            job_kwargs=meta.kwargs,
            duration_s=duration_s,
            error=error,
            traceback=traceback,
        )
        shipper.submit("job", event)


def _default_job_type(job_id: str) -> str:
    """``reminder_123`` -> ``reminder``: per-instance ids fold into their type."""
    return re.sub(r"([_:\-.]?[0-9a-f]{8,}|[_:\-.]?\d+)$", "", job_id) or job_id


_default_tracker: JobTracker | None = None
_default_lock = threading.Lock()


def default_tracker() -> JobTracker:
    global _default_tracker
    if _default_tracker is None:
        with _default_lock:
            if _default_tracker is None:
                _default_tracker = JobTracker()
    return _default_tracker
