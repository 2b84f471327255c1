"""One request's timeline across services: what traces would show, with tracing off.

Everything recorded under one correlation_id, in time order: its log lines from every
service (Loki), every queue push and pop with the wait between them, and every job run
(Postgres). Each event carries the gap since the previous one, and each service / queue
hop / job gets one bar of a waterfall, so "where did this message spend its 9 seconds"
has an answer at a glance.

The one place that assembles it: the admin correlation page and ``otel-assist follow``
both call ``build()``. Loki down or not configured costs only the log lines: the Postgres
part is still returned, with a notice saying why the lines are missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from rest_service.core.db import Database, utcnow
from rest_service.crud import jobs as jobs_crud
from rest_service.crud import queues as queues_crud
from rest_service.loki import LEVELS, LogFilter, LogLine, LokiClient, LokiUnavailable
from rest_service.models import JobExecution, QueueMessageLog

Kind = Literal["log", "push", "pop", "job"]

#: Postgres keeps history for days; Loki keeps 48 h (loki.yaml), the query cap.
DB_WINDOW = timedelta(days=7)
LOKI_WINDOW = timedelta(hours=48)
MAX_ROWS = 500


@dataclass(frozen=True)
class Event:
    at: datetime
    lane: str  # the waterfall row: a service, a queue hop or a job
    service: str
    kind: Kind
    title: str
    detail: str = ""
    level: str = ""  # Loki's level value, for log lines
    duration_s: float | None = None  # a job's run time; a pop's wait since its push
    link: str | None = None  # admin path for a job run
    fields: tuple[tuple[str, str], ...] = ()
    offset_s: float = 0.0  # since the first event
    gap_s: float = 0.0  # since the previous event

    @property
    def level_shown(self) -> str:
        return LEVELS.get(self.level, self.level)


@dataclass(frozen=True)
class Bar:
    """One waterfall row: from the lane's first event to its last (or its end)."""

    lane: str
    start_s: float
    end_s: float
    events: int

    def x(self, total_s: float, width: int = 1000) -> int:
        return round(width * self.start_s / total_s) if total_s > 0 else 0

    def w(self, total_s: float, width: int = 1000) -> int:
        span = (self.end_s - self.start_s) / total_s if total_s > 0 else 1.0
        return max(3, round(width * span))


@dataclass
class Timeline:
    correlation_id: str
    events: list[Event] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    total_s: float = 0.0
    notice: str | None = None  # why log lines are missing, when they are
    truncated: bool = False
    #: The Postgres rows behind the queue and job events, push before pop.
    messages: list[QueueMessageLog] = field(default_factory=list)
    runs: list[JobExecution] = field(default_factory=list)

    @property
    def longest_gap(self) -> Event | None:
        later = self.events[1:]
        return max(later, key=lambda e: e.gap_s) if later else None


def _log_events(lines: list[LogLine]) -> list[Event]:
    hidden = {"service_name", "detected_level", "correlation_id"}
    return [
        Event(
            at=line.at,
            # One process can host several components (the demo does): a lane each.
            lane=" · ".join(
                filter(None, (line.service or "unknown service", line.labels.get("component")))
            ),
            service=line.service or "unknown service",
            kind="log",
            title=line.line,
            detail=line.labels.get("event_type", ""),
            level=line.level,
            fields=tuple(sorted((k, v) for k, v in line.labels.items() if k not in hidden)),
        )
        for line in lines
    ]


async def build(
    correlation_id: str,
    db: Database,
    loki: LokiClient,
    *,
    now: datetime | None = None,
) -> Timeline:
    """The timeline of ``correlation_id`` (already validated by the caller)."""
    now = now or utcnow()
    timeline = Timeline(correlation_id)
    messages = await queues_crud.list_messages(
        db, since=now - DB_WINDOW, correlation_id=correlation_id, limit=MAX_ROWS
    )
    runs = await jobs_crud.list_executions(
        db, since=now - DB_WINDOW, correlation_id=correlation_id, limit=MAX_ROWS
    )
    timeline.messages = sorted(messages, key=lambda m: (m.created_at, m.direction != "push"))
    timeline.runs = list(runs)
    events: list[Event] = []
    pushed_at = {m.message_id: m.created_at for m in messages if m.direction == "push"}
    for m in messages:
        wait = None
        if m.direction == "pop" and m.message_id in pushed_at:
            wait = max(0.0, (m.created_at - pushed_at[m.message_id]).total_seconds())
        events.append(
            Event(
                at=m.created_at,
                lane=f"queue {m.queue_name}",
                service=(m.source or "") if m.direction == "push" else "",
                kind="push" if m.direction == "push" else "pop",
                title=f"{m.direction} {m.queue_name}",
                detail=m.message_type,
                duration_s=wait,
                fields=tuple(
                    (k, str(v))
                    for k, v in (
                        ("message_id", m.message_id),
                        ("source", m.source),
                        ("user_id", m.user_id),
                    )
                    if v is not None
                ),
            )
        )
    for j in runs:
        at = j.started_at or j.scheduled_at or j.created_at
        events.append(
            Event(
                at=at,
                lane=f"job {j.job_type}",
                service="cron",
                kind="job",
                title=f"{j.job_name} ({j.status})",
                detail=(j.error or "")[:200],
                duration_s=j.duration_ms / 1000 if j.duration_ms is not None else None,
                link=f"/admin/jobs/{j.id}",
            )
        )
    try:
        lines = await loki.query_range(
            LogFilter(correlation_id=correlation_id).logql(),
            now - LOKI_WINDOW,
            now,
            MAX_ROWS + 1,
            forward=True,
        )
        timeline.truncated = len(lines) > MAX_ROWS
        events += _log_events(lines[-MAX_ROWS:] if timeline.truncated else lines)
    except LokiUnavailable as exc:
        timeline.notice = f"Log lines are not shown: {exc}"
    timeline.truncated |= len(messages) >= MAX_ROWS or len(runs) >= MAX_ROWS
    order = {"push": 0, "job": 1, "log": 2, "pop": 3}
    events.sort(key=lambda e: (e.at, order[e.kind]))
    if not events:
        return timeline
    first = events[0].at
    previous = first
    placed: list[Event] = []
    for e in events:
        placed.append(
            replace(
                e,
                offset_s=(e.at - first).total_seconds(),
                gap_s=(e.at - previous).total_seconds(),
            )
        )
        previous = e.at
    timeline.events = placed
    spans: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for e in placed:
        start = e.offset_s - (e.duration_s or 0.0) if e.kind == "pop" else e.offset_s
        end = e.offset_s + (e.duration_s or 0.0) if e.kind == "job" else e.offset_s
        lo, hi = spans.get(e.lane, [start, end])
        spans[e.lane] = [min(lo, start, end), max(hi, start, end)]
        counts[e.lane] = counts.get(e.lane, 0) + 1
    timeline.total_s = max(hi for _, hi in spans.values()) if spans else 0.0
    timeline.bars = sorted(
        (Bar(lane, max(0.0, lo), hi, counts[lane]) for lane, (lo, hi) in spans.items()),
        key=lambda b: (b.start_s, b.lane),
    )
    return timeline
