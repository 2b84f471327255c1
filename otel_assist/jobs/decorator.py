"""``@tracked_job`` and the per-run wrapper it shares with the APScheduler glue.

The wrapper does only clock reads, a context attach, the ``job started`` line (so it
precedes the job's own lines) and a ``SimpleQueue.put`` per event; the tracker thread does
the rest. Each run gets a run id and its own correlation_id, attached while the job runs,
so its log lines carry it.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import context

from otel_assist.correlation import context_with_correlation_id
from otel_assist.jobs.tracker import (
    JobMeta,
    JobTracker,
    RunEnded,
    RunStarted,
    default_tracker,
)
from otel_assist.logs.configure import get_logger
from otel_assist.queues.envelope import new_message_id as new_id

F = TypeVar("F", bound=Callable[..., Any])
_FLAG = "__otel_assist_job__"
_log = get_logger("otel_assist.jobs")


@dataclass(frozen=True)
class JobOptions:
    """What ``@tracked_job`` attaches to a function."""

    job_type: str | None = None
    max_runtime: float | None = None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


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
            put(RunStarted(run_id, meta, clock.time(), clock.monotonic(), cid))
            token = context.attach(context_with_correlation_id(cid, context.Context()))
            try:
                _log_started(run_id, meta)
                result = await func(*args, **kwargs)
            except BaseException as exc:
                put(RunEnded(run_id, meta, clock.time(), perf() - p0, exc, cid))
                raise
            finally:
                context.detach(token)
            put(RunEnded(run_id, meta, clock.time(), perf() - p0, None, cid))
            return result

        wrapper: Any = run_async
    else:

        @functools.wraps(func)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            meta = meta_of()
            run_id = new_id()
            cid = new_id()
            p0 = perf()
            put(RunStarted(run_id, meta, clock.time(), clock.monotonic(), cid))
            token = context.attach(context_with_correlation_id(cid, context.Context()))
            try:
                _log_started(run_id, meta)
                result = func(*args, **kwargs)
            except BaseException as exc:
                put(RunEnded(run_id, meta, clock.time(), perf() - p0, exc, cid))
                raise
            finally:
                context.detach(token)
            put(RunEnded(run_id, meta, clock.time(), perf() - p0, None, cid))
            return result

        wrapper = run_sync
    return wrapper


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
