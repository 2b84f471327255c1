"""Cron-job tracking for APScheduler 3.x: one call on a scheduler, or a decorator.

    scheduler = AsyncIOScheduler()
    track_scheduler(scheduler, max_runtime=300)
    scheduler.add_job(send_reminder, "interval", minutes=1, kwargs={"user_id": 42})

Each run gets a run id and its own correlation_id (attached while the job runs, so its log
lines carry it); start, completion (duration) and failure (error, traceback) become
history events for rest_service and metrics (``cron_jobs_total``,
``cron_job_duration_seconds``). ``user_id`` / ``reminder_id`` are taken from the job's
kwargs when present.

Detections APScheduler does not give on its own, done by a sweeper on the tracker thread:

* **missed**: a run due more than ``grace`` ago that never started. Two ways to get there:
  the scheduler never fired it (paused, its thread or loop blocked, the process was
  down) - the sweeper walks the trigger's fire times between the job's stale
  ``next_run_time`` and now - or it was submitted but never began (executor saturated).
  APScheduler's own EVENT_JOB_MISSED (reported when it later picks a misfire up) is
  deduplicated against the sweeper's by a deterministic run id.
* **timed out / stuck**: a run still going past its ``max_runtime`` (per job through
  ``@tracked_job(max_runtime=...)``, or per job type / default in ``track_scheduler``).
  Its status becomes ``timed_out`` for good: counted once then, and when it finishes
  later its duration (and error) are recorded but it is not counted again;
  ``cron_jobs_running_over_max_runtime`` counts those still running.
* **overlap**: EVENT_JOB_MAX_INSTANCES (a run skipped because the previous one still runs):
  ``skipped`` in metrics and history.
* **cancelled**: a run ended by cancellation (``asyncio.CancelledError`` when
  ``scheduler.shutdown()`` cancels it, KeyboardInterrupt, SystemExit) is ``cancelled``,
  not a failure: it neither raises nor resets the consecutive-failure count.
* **consecutive failures** per job id; the gauge ``cron_job_consecutive_failures`` shows
  the worst job of each type.

Every run is counted once in ``cron_jobs_total``, under the status its history row ends
with; docs/job-lifecycle.md is the table of statuses. APScheduler's own
``Job ... raised an exception`` line is dropped for tracked jobs (``job failed`` carries the
same traceback), so one failure is one ERROR line.

The wrapper around the job does only clock reads, a context attach, the ``job started``
line (so it precedes the job's own lines) and a ``SimpleQueue.put`` per event; listeners
only enqueue. The end line, metrics, history and the sweeps run on one daemon thread, so
tracking never blocks the event loop of an AsyncIOScheduler, and an error in tracking
never fails a job.

Jobs in the memory job store are wrapped in place when added. Jobs in a persistent job
store are reloaded from storage on every run, so decorate their functions with
``@tracked_job`` (their job id in history is then the function's qualified name);
undecorated ones are still counted from APScheduler's executed/error events.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import logging
import os
import queue
import re
import threading
import time
import traceback
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from opentelemetry import context

from otel_assist import metrics
from otel_assist import monitors as cron_monitors
from otel_assist.correlation import context_with_correlation_id, new_correlation_id
from otel_assist.history import HistoryShipper, default_shipper
from otel_assist.logs import get_logger
from otel_assist.queue_envelope import new_message_id as new_id
from otel_assist.settings import _Reader

F = TypeVar("F", bound=Callable[..., Any])
#: Statuses a run can end with; each run is counted once, under one of these.
RUN_STATUSES = ("completed", "failed", "timed_out", "missed", "skipped", "cancelled")
_FLAG = "__otel_assist_job__"
_log = get_logger("otel_assist.jobs")


@dataclass(frozen=True)
class JobSettings:
    """``OTEL_ASSIST_JOB_*`` variables."""

    grace_s: float = 60.0
    sweep_interval_s: float = 15.0
    max_runtime_s: float | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JobSettings:
        r = _Reader(os.environ if env is None else env)
        max_runtime = r.integer("OTEL_ASSIST_JOB_MAX_RUNTIME_MS", 0, 0)
        return cls(
            grace_s=r.integer("OTEL_ASSIST_JOB_GRACE_MS", 60_000, 0) / 1000,
            sweep_interval_s=r.integer("OTEL_ASSIST_JOB_SWEEP_INTERVAL_MS", 15_000, 10) / 1000,
            max_runtime_s=max_runtime / 1000 if max_runtime else None,
        )


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
class JobOptions:
    """What ``@tracked_job`` attaches to a function."""

    job_type: str | None = None
    max_runtime: float | None = None


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


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


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


def _missed_run_id(job_id: str, due: datetime) -> str:
    digest = hashlib.sha1(f"{job_id}|{_utc(due).isoformat()}".encode(), usedforsecurity=False)
    return "missed-" + digest.hexdigest()[:24]


class JobTracker:
    """Receives run and scheduler events on a queue and does all the work on its thread."""

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
        self.events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.schedulers: list[tuple[Any, _SchedulerOptions]] = []
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

    def put(self, *event: Any) -> None:
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
        self.put("ping")  # FIFO: processed after everything put before it
        return self._idle.wait(timeout_s)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self.events.put(("ping",))
        self._thread.join(timeout_s)
        self._thread = None
        self._pid = 0

    @property
    def shipper(self) -> HistoryShipper | None:
        shipper = self._shipper if self._shipper is not None else default_shipper()
        return shipper if shipper.enabled else None

    # ----------------------------------------------------------- tracker thread

    def _run(self) -> None:
        next_sweep = time.monotonic() + self.settings.sweep_interval_s
        while not self._stop.is_set():
            timeout = max(0.0, next_sweep - time.monotonic())
            try:
                event = self.events.get(timeout=timeout)
            except queue.Empty:
                event = None
            try:
                if event is not None:
                    self._handle(event)
                if time.monotonic() >= next_sweep:
                    self.sweep()
                    next_sweep = time.monotonic() + self.settings.sweep_interval_s
            except Exception as exc:  # tracking errors never leave this thread
                _log.warning("job tracker error", error=repr(exc))
            if event == ("ping",):
                self._idle.set()

    def _handle(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "ping":
            return
        if kind == "start":
            self._on_start(*event[1:])
        elif kind == "end":
            self._on_end(*event[1:])
        elif kind == "submitted":
            self._on_submitted(*event[1:])
        elif kind == "apscheduler":
            self._on_apscheduler(*event[1:])
        elif kind == "sweep":
            self.sweep()

    def _on_start(
        self, run_id: str, meta: JobMeta, at: float, mono: float, correlation_id: str
    ) -> None:
        # "job started" was logged by the wrapper, in the run's own context, so it comes
        # before the job's own lines.
        self.running[run_id] = _Running(meta, mono, correlation_id)
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

    def _on_end(
        self,
        run_id: str,
        meta: JobMeta,
        at: float,
        duration_s: float,
        exc: BaseException | None,
        correlation_id: str,
    ) -> None:
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

    def remember(self, job: Any, opts: _SchedulerOptions) -> None:
        """Keep a job's meta from when it was added (bounded)."""
        with contextlib.suppress(Exception):
            if len(self._metas) >= 10_000 and job.id not in self._metas:
                self._metas.pop(next(iter(self._metas)))
            self._metas[job.id] = opts.meta(job)

    def _missed(self, meta: JobMeta, due: datetime, why: str) -> None:
        key = (meta.job_id, due)
        if key in self._reported_missed:
            return
        self._reported_missed[key] = self.clock.monotonic()
        self._known_types.add(meta.job_type)
        self._count(meta.job_type, "missed")
        run_id = _missed_run_id(meta.job_id, due)
        _log.warning(
            "job run missed",
            event_type="job_error",
            job_id=meta.job_id,
            job_type=meta.job_type,
            run_id=run_id,
            due=due.isoformat(),
            reason=why,
        )
        cid = new_correlation_id()
        self._ship(run_id, meta, "scheduled", due.timestamp(), cid)
        self._ship(run_id, meta, "missed", due.timestamp(), cid)

    def _skipped(self, meta: JobMeta, due: datetime) -> None:
        self._count(meta.job_type, "skipped")
        run_id = "skipped-" + _missed_run_id(meta.job_id, due)[7:]
        _log.warning(
            "job run skipped: previous run still going (max instances reached)",
            event_type="job_error",
            job_id=meta.job_id,
            job_type=meta.job_type,
            run_id=run_id,
            due=due.isoformat(),
        )
        cid = new_correlation_id()
        self._ship(run_id, meta, "scheduled", due.timestamp(), cid)
        self._ship(run_id, meta, "skipped", due.timestamp(), cid)

    def sweep(self) -> None:
        """Missed, stuck and gauge upkeep. Runs on the tracker thread every sweep interval."""
        now_mono = self.clock.monotonic()
        now = datetime.fromtimestamp(self.clock.time(), UTC)
        grace = timedelta(seconds=self.settings.grace_s)
        cat = metrics.catalog()
        # Stuck runs.
        over: dict[str, int] = defaultdict(int)
        for run_id, info in list(self.running.items()):
            limit = info.meta.max_runtime
            if limit is None or now_mono - info.started_mono <= limit:
                continue
            over[info.meta.job_type] += 1
            if not info.timed_out:
                info.timed_out = True
                self._count(info.meta.job_type, "timed_out")
                _log.warning(
                    "job run exceeded its max runtime",
                    event_type="job_error",
                    correlation_id=info.correlation_id,
                    job_id=info.meta.job_id,
                    job_type=info.meta.job_type,
                    run_id=run_id,
                    max_runtime_s=limit,
                    running_s=round(now_mono - info.started_mono, 3),
                )
                self._ship(run_id, info.meta, "timed_out", self.clock.time(), info.correlation_id)
        for job_type in self._known_types | set(over):
            cat["cron_jobs_running_over_max_runtime"].set(over.get(job_type, 0), job_type=job_type)
        # Submitted but never started.
        for job_id, pending in self._pending.items():
            while pending and now - pending[0] > grace:
                self._missed(self._meta_for(job_id), pending.popleft(), "submitted, never started")
        # Never fired, and the scheduled-jobs gauge.
        scheduled: dict[str, int] = defaultdict(int)
        for scheduler, opts in self.schedulers:
            try:
                jobs = scheduler.get_jobs()
            except Exception:  # noqa: S112 - a scheduler being shut down
                continue
            for job in jobs:
                meta = opts.meta(job)
                self._known_types.add(meta.job_type)
                self._job_types[job.id] = meta.job_type
                scheduled[meta.job_type] += 1
                nrt = getattr(job, "next_run_time", None)
                if nrt is not None and now - _utc(nrt) > grace:
                    self._missed_fire_times(job, meta, _utc(nrt), now - grace)
        for job_type in self._known_types:
            cat["cron_scheduled_jobs"].set(scheduled.get(job_type, 0), job_type=job_type)
        # Forget old dedup keys (an hour is far beyond any misfire grace).
        cutoff = now_mono - max(3600.0, 10 * self.settings.grace_s)
        for key, seen in list(self._reported_missed.items()):
            if seen < cutoff:
                del self._reported_missed[key]

    def _missed_fire_times(self, job: Any, meta: JobMeta, first: datetime, until: datetime) -> None:
        due: datetime | None = first
        for _ in range(100):  # bounded per sweep
            if due is None or due > until:
                return
            self._missed(meta, due, "due but never fired (scheduler paused, blocked or down)")
            nxt = job.trigger.get_next_fire_time(due, until)
            due = _utc(nxt) if nxt is not None and _utc(nxt) > due else None

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
        event: dict[str, Any] = {
            "event_id": f"{run_id}:{kind}",
            "run_id": run_id,
            "job_id": meta.job_id[:256],
            "job_name": meta.job_name[:256],
            "job_type": meta.job_type[:128],
            "kind": kind,
            "at": at,
            "correlation_id": correlation_id,
            "user_id": _int_or_none(meta.kwargs.get("user_id")),
            "reminder_id": _int_or_none(meta.kwargs.get("reminder_id")),
        }
        if duration_s is not None:
            event["duration_ms"] = round(duration_s * 1000)
        if error is not None:
            event["error"] = error
            event["traceback"] = traceback
        shipper.submit("job", event)


# --------------------------------------------------------------------------- wrapping


def _default_job_type(job_id: str) -> str:
    """``reminder_123`` -> ``reminder``: per-instance ids fold into their type."""
    return re.sub(r"([_:\-.]?[0-9a-f]{8,}|[_:\-.]?\d+)$", "", job_id) or job_id


def _log_started(run_id: str, meta: JobMeta) -> None:
    # Logged in the wrapper, in the run's context (so it carries the run's correlation_id),
    # not on the tracker thread: the line then always comes before the job's own lines.
    _log.info(
        "job started",
        event_type="job_start",
        job_id=meta.job_id,
        job_type=meta.job_type,
        run_id=run_id,
        user_id=_int_or_none(meta.kwargs.get("user_id")),
    )


def _wrap(func: Callable[..., Any], tracker: JobTracker, meta_of: Callable[[], JobMeta]) -> Any:
    """The per-run wrapper: run id, correlation_id attached, start/end handed to the tracker."""
    perf = time.perf_counter
    clock = tracker.clock
    put = tracker.put

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            meta = meta_of()
            run_id = new_id()
            cid = new_id()
            p0 = perf()
            put("start", run_id, meta, clock.time(), clock.monotonic(), cid)
            token = context.attach(context_with_correlation_id(cid, context.Context()))
            try:
                _log_started(run_id, meta)
                result = await func(*args, **kwargs)
            except BaseException as exc:
                put("end", run_id, meta, clock.time(), perf() - p0, exc, cid)
                raise
            finally:
                context.detach(token)
            put("end", run_id, meta, clock.time(), perf() - p0, None, cid)
            return result

        wrapper: Any = run_async
    else:

        @functools.wraps(func)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            meta = meta_of()
            run_id = new_id()
            cid = new_id()
            p0 = perf()
            put("start", run_id, meta, clock.time(), clock.monotonic(), cid)
            token = context.attach(context_with_correlation_id(cid, context.Context()))
            try:
                _log_started(run_id, meta)
                result = func(*args, **kwargs)
            except BaseException as exc:
                put("end", run_id, meta, clock.time(), perf() - p0, exc, cid)
                raise
            finally:
                context.detach(token)
            put("end", run_id, meta, clock.time(), perf() - p0, None, cid)
            return result

        wrapper = run_sync
    return wrapper


_default_tracker: JobTracker | None = None
_default_lock = threading.Lock()


def default_tracker() -> JobTracker:
    global _default_tracker
    if _default_tracker is None:
        with _default_lock:
            if _default_tracker is None:
                _default_tracker = JobTracker()
    return _default_tracker


def tracked_job(job_type: str | None = None, max_runtime: float | None = None) -> Callable[[F], F]:
    """Track every call of a sync or async job function (with or without a scheduler).

    ``max_runtime`` (seconds) is when a still-running call counts as stuck.
    """

    def decorate(func: F) -> F:
        options = JobOptions(job_type, max_runtime)
        job_id = f"{func.__module__}.{func.__qualname__}"
        meta = JobMeta(job_id, func.__name__, job_type or func.__name__, max_runtime)
        wrapper = _wrap(func, default_tracker(), lambda: meta)
        setattr(wrapper, _FLAG, options)
        return wrapper

    return decorate


@dataclass
class _SchedulerOptions:
    job_type: Callable[[Any], str] | None
    max_runtime: float | Mapping[str, float] | None

    def meta(self, job: Any) -> JobMeta:
        func = getattr(job, "func", None)
        opts: JobOptions | None = getattr(func, _FLAG, None)
        if opts is not None and opts.job_type:
            job_type = opts.job_type
        elif self.job_type is not None:
            job_type = self.job_type(job)
        else:
            job_type = _default_job_type(str(job.id))
        limit: float | None = opts.max_runtime if opts is not None else None
        if limit is None:
            if isinstance(self.max_runtime, Mapping):
                limit = self.max_runtime.get(job_type)
            else:
                limit = self.max_runtime
        return JobMeta(str(job.id), str(job.name), job_type, limit, dict(job.kwargs or {}))


class _TrackedJobErrorFilter(logging.Filter):
    """Drops APScheduler's ``Job "..." raised an exception`` record for jobs the tracker
    wraps: the tracker's ``job failed`` line (with the same traceback) already reports the
    run, and two ERROR lines per failure would double what error-rate alerts count.
    Records about untracked jobs, and every other APScheduler record, pass unchanged."""

    MESSAGE = 'Job "%s" raised an exception'

    def __init__(self, tracker: JobTracker) -> None:
        super().__init__()
        self._tracker = tracker
        self._attached: set[str] = set()

    def attach(self, alias: str) -> None:
        # APScheduler logs a job's outcome on ``apscheduler.executors.<alias>``; a logger's
        # filters see only records created on that logger, so each alias gets this filter.
        if alias not in self._attached:
            self._attached.add(alias)
            logging.getLogger(f"apscheduler.executors.{alias}").addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != self.MESSAGE or not isinstance(record.args, tuple) or not record.args:
            return True
        job_id = getattr(record.args[0], "id", None)
        return not (isinstance(job_id, str) and self._tracker.reports_runs_of(job_id))


def track_scheduler(
    scheduler: Any,
    *,
    job_type: Callable[[Any], str] | None = None,
    max_runtime: float | Mapping[str, float] | None = None,
    grace: float | None = None,
    sweep_interval: float | None = None,
    shipper: HistoryShipper | None = None,
    clock: Clock | None = None,
) -> JobTracker:
    """Track every job of an APScheduler 3.x scheduler (call before or after start()).

    ``job_type(job)`` names a job's type (default: the job id without a trailing number,
    ``reminder_123`` -> ``reminder``); ``max_runtime`` is seconds, or a dict per job type;
    ``grace`` (seconds, default ``OTEL_ASSIST_JOB_GRACE_MS``) is how late a run may be
    before it counts as missed. ``clock`` replaces the real clocks (tests).
    """
    from otel_assist.extras import require

    require("queues", "otel_assist.jobs.track_scheduler")  # names the extra, not a traceback
    if job_type is not None and not callable(job_type):
        # A string here used to make every wrapped run fail before the job's own code, with
        # nothing logged: a programming error, so it stops set-up with the fix named.
        raise TypeError(
            f"track_scheduler(job_type=...) takes a function of the job returning its type,"
            f" not {type(job_type).__name__}: job_type=lambda job: {job_type!r}"
        )
    from apscheduler.events import (
        EVENT_EXECUTOR_ADDED,
        EVENT_JOB_ADDED,
        EVENT_JOB_ERROR,
        EVENT_JOB_EXECUTED,
        EVENT_JOB_MAX_INSTANCES,
        EVENT_JOB_MISSED,
        EVENT_JOB_MODIFIED,
        EVENT_JOB_SUBMITTED,
    )
    from apscheduler.jobstores.memory import MemoryJobStore

    base = JobSettings.from_env()
    settings = JobSettings(
        grace_s=base.grace_s if grace is None else grace,
        sweep_interval_s=base.sweep_interval_s if sweep_interval is None else sweep_interval,
        max_runtime_s=base.max_runtime_s,
    )
    if max_runtime is None:
        max_runtime = base.max_runtime_s
    tracker = JobTracker(shipper=shipper, settings=settings, clock=clock)
    opts = _SchedulerOptions(job_type, max_runtime)
    registrar = cron_monitors.registrar_for(shipper)  # rest_service-side monitors (issue 15)
    tracker.schedulers.append((scheduler, opts))

    def in_memory(alias: str) -> bool:
        store = getattr(scheduler, "_jobstores", {}).get(alias)
        return store is None or isinstance(store, MemoryJobStore)

    def wrap_job(job: Any, jobstore: str | None = None) -> None:
        tracker.remember(job, opts)
        with contextlib.suppress(Exception):
            cron_monitors.register_job(registrar, job, opts.meta(job), settings.grace_s)
        func = job.func
        alias = jobstore or getattr(job, "_jobstore_alias", None) or "default"
        if not in_memory(alias):
            # A persistent job store hands out a fresh copy per lookup and per run, so a
            # wrapper would be lost: a decorated function tracks itself, anything else is
            # reported from APScheduler's executed/error events.
            tracker._tracked_ids[job.id] = hasattr(func, _FLAG)
            return
        if getattr(func, "__otel_assist_scheduler_wrapped__", False):
            tracker._tracked_ids[job.id] = True
            return
        inner = getattr(func, "__wrapped__", None) if hasattr(func, _FLAG) else None
        target = inner if inner is not None else func
        if not callable(target):
            tracker._tracked_ids[job.id] = False
            return
        cache: list[Any] = [None, None]  # (job.kwargs object, JobMeta)

        def meta_of() -> JobMeta:
            # Rebuilt only when APScheduler replaced the job's kwargs (job.modify).
            if cache[0] is not job.kwargs:
                cache[0], cache[1] = job.kwargs, opts.meta(job)
            meta: JobMeta = cache[1]
            return meta

        wrapper = _wrap(target, tracker, meta_of)
        setattr(wrapper, _FLAG, getattr(func, _FLAG, JobOptions()))
        wrapper.__otel_assist_scheduler_wrapped__ = True
        job.func = wrapper
        tracker._tracked_ids[job.id] = True

    duplicate_filter = _TrackedJobErrorFilter(tracker)
    for alias in ("default", *getattr(scheduler, "_executors", {})):
        duplicate_filter.attach(alias)

    def on_event(event: Any) -> None:
        # Runs on scheduler or executor threads: only enqueue, never do work here.
        try:
            code = event.code
            if code == EVENT_EXECUTOR_ADDED:
                duplicate_filter.attach(event.alias)
            elif code in (EVENT_JOB_ADDED, EVENT_JOB_MODIFIED):
                job = scheduler.get_job(event.job_id, event.jobstore)
                if job is not None:
                    wrap_job(job, event.jobstore)
            elif code == EVENT_JOB_SUBMITTED:
                tracker.put("submitted", event.job_id, list(event.scheduled_run_times))
            elif code == EVENT_JOB_MAX_INSTANCES:
                tracker.put(
                    "apscheduler", code, event.job_id, list(event.scheduled_run_times), None
                )
            else:
                tracker.put(
                    "apscheduler",
                    code,
                    event.job_id,
                    [event.scheduled_run_time],
                    getattr(event, "exception", None),
                )
        except Exception:  # noqa: S110 - tracking must never fail the scheduler
            pass

    scheduler.add_listener(
        on_event,
        EVENT_EXECUTOR_ADDED
        | EVENT_JOB_ADDED
        | EVENT_JOB_MODIFIED
        | EVENT_JOB_SUBMITTED
        | EVENT_JOB_MAX_INSTANCES
        | EVENT_JOB_MISSED
        | EVENT_JOB_EXECUTED
        | EVENT_JOB_ERROR,
    )
    for job in scheduler.get_jobs():
        with contextlib.suppress(Exception):
            wrap_job(job)
    tracker._ensure_thread()
    return tracker
