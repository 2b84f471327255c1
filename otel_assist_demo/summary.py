"""The live terminal summary: queue lengths and ages, job outcomes, request rate, errors.

Numbers come from where an operator would read them: queue state from Redis (LLEN and the
oldest envelope's enqueue time, like the sampler and rest_service's live view), everything
else from this process's Prometheus registry, i.e. exactly what ``/metrics`` serves.
On a terminal the block is redrawn in place with plain ANSI escapes; otherwise (a pipe, a
CI log) one summary line is printed every few seconds.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from prometheus_client import REGISTRY
from redis.exceptions import RedisError

from otel_assist.queues.envelope import enqueued_at_of

Labels = Mapping[str, str]


def read_registry() -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of the process registry by sample name (``llm_requests_total``...)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in REGISTRY.collect():
        for sample in family.samples:
            out[sample.name].append((dict(sample.labels), float(sample.value)))
    return out


def total(
    samples: Mapping[str, list[tuple[dict[str, str], float]]],
    name: str,
    where: Callable[[Labels], bool] | None = None,
) -> float:
    return sum(v for labels, v in samples.get(name, ()) if where is None or where(labels))


def by(
    samples: Mapping[str, list[tuple[dict[str, str], float]]], name: str, label: str
) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for labels, v in samples.get(name, ()):
        out[labels.get(label, "")] += v
    return out


def by_pair(
    samples: Mapping[str, list[tuple[dict[str, str], float]]], name: str, first: str, second: str
) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = defaultdict(float)
    for labels, v in samples.get(name, ()):
        out[(labels.get(first, ""), labels.get(second, ""))] += v
    return out


@dataclass
class QueueState:
    name: str
    length: int | None
    oldest_age_s: float | None
    pushed: float = 0.0
    popped: float = 0.0


@dataclass
class Snapshot:
    elapsed_s: float
    duration_s: float | None
    queues: list[QueueState]
    processed: dict[str, float]
    http_total: float
    http_rate: float
    http_5xx: float
    llm: dict[str, float]
    tools: dict[str, float]
    rag: float
    jobs: dict[str, float]
    logs: dict[str, float]
    history: dict[str, float]
    history_buffered: float
    notes: list[str] = field(default_factory=list)


async def queue_states(redis: Any, names: Iterable[str]) -> list[QueueState]:
    names = list(names)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(name)
                pipe.lindex(name, -1)
            replies = await pipe.execute()
    except (RedisError, OSError):
        return [QueueState(n, None, None) for n in names]
    now = time.time()
    states = []
    for i, name in enumerate(names):
        length = int(replies[2 * i] or 0)
        enq = enqueued_at_of(replies[2 * i + 1]) if length else None
        states.append(QueueState(name, length, max(0.0, now - enq) if enq else None))
    return states


class Collector:
    """Builds snapshots; remembers the previous HTTP count to compute a rate."""

    def __init__(self, redis: Any, queues: Iterable[str], duration_s: float | None) -> None:
        self.redis = redis
        self.queues = list(queues)
        self.duration_s = duration_s
        self.started = time.monotonic()
        self._last: tuple[float, float] | None = None
        self.notes: list[str] = []

    async def snapshot(self) -> Snapshot:
        samples = read_registry()
        now = time.monotonic()
        http_total = total(samples, "http_server_request_duration_seconds_count")
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = max(0.0, (http_total - self._last[1]) / (now - self._last[0]))
        self._last = (now, http_total)
        queues = await queue_states(self.redis, self.queues)
        pushed = by_pair(samples, "queue_messages_total", "queue_name", "direction")
        for q in queues:
            q.pushed = pushed.get((q.name, "push"), 0.0)
            q.popped = pushed.get((q.name, "pop"), 0.0)
        return Snapshot(
            elapsed_s=now - self.started,
            duration_s=self.duration_s,
            queues=queues,
            processed=by(samples, "messages_processed_total", "status"),
            http_total=http_total,
            http_rate=rate,
            http_5xx=total(
                samples,
                "http_server_request_duration_seconds_count",
                lambda lb: lb.get("http_response_status_code", "").startswith("5"),
            ),
            llm=by(samples, "llm_requests_total", "status"),
            tools=by(samples, "tool_calls_total", "status"),
            rag=total(samples, "rag_search_duration_seconds_count"),
            jobs=by(samples, "cron_jobs_total", "status"),
            logs=by(samples, "log_records_total", "level"),
            history=by(samples, "history_events_total", "outcome"),
            history_buffered=total(samples, "history_buffered_events"),
            notes=self.notes,
        )


def _n(value: float) -> str:
    return f"{value:.0f}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def render_block(s: Snapshot, final: bool = False) -> list[str]:
    """The multi-line view for a terminal."""
    span = f" of {_clock(s.duration_s)}" if s.duration_s else ""
    state = (
        f"stopped after {_clock(s.elapsed_s)}"
        if final
        else f"running {_clock(s.elapsed_s)}{span}  ·  Ctrl-C stops and flushes history"
    )
    lines = [
        f"\x1b[1motel-assist demo\x1b[0m  {state}",
        "",
        f"  {'queue':<14}{'length':>8}{'oldest':>10}{'pushed':>9}{'popped':>9}",
    ]
    for q in s.queues:
        length = "?" if q.length is None else str(q.length)
        lines.append(
            f"  {q.name:<14}{length:>8}{_age(q.oldest_age_s):>10}{_n(q.pushed):>9}{_n(q.popped):>9}"
        )
    err = "\x1b[31m{}\x1b[0m"
    processed_err = s.processed.get("error", 0)
    lines += [
        "",
        f"  messages   processed {_n(s.processed.get('success', 0) + processed_err)}"
        f" · errors {err.format(_n(processed_err)) if processed_err else '0'}",
        f"  http       {s.http_rate:5.1f} req/s · total {_n(s.http_total)} · 5xx {_n(s.http_5xx)}",
        f"  llm        calls {_n(sum(s.llm.values()))} · errors {_n(s.llm.get('error', 0))}"
        f" · tools {_n(sum(s.tools.values()))} (errors {_n(s.tools.get('error', 0))})"
        f" · rag searches {_n(s.rag)}",
        "  cron jobs  "
        + (
            " · ".join(
                f"{status.replace('_', ' ')} {_n(s.jobs.get(status, 0))}"
                for status in ("completed", "failed", "timed_out", "missed")
            )
        ),
        f"  log lines  error {_n(s.logs.get('error', 0) + s.logs.get('critical', 0))}"
        f" · warning {_n(s.logs.get('warning', 0))} · info {_n(s.logs.get('info', 0))}",
        f"  history    sent {_n(s.history.get('sent', 0))} · buffered {_n(s.history_buffered)}"
        f" · retried {_n(s.history.get('retried', 0))} · dropped {_n(s.history.get('dropped', 0))}",
    ]
    lines += [f"  note: {note}" for note in s.notes]
    return lines


def render_line(s: Snapshot) -> str:
    """One line for logs and pipes."""
    queues = " ".join(
        f"{q.name}={'?' if q.length is None else q.length}/{_age(q.oldest_age_s).replace(' ', '')}"
        for q in s.queues
    )
    jobs = ",".join(f"{k}={_n(v)}" for k, v in sorted(s.jobs.items()))
    pushed = sum(q.pushed for q in s.queues)
    popped = sum(q.popped for q in s.queues)
    return (
        f"[demo {_clock(s.elapsed_s)}] {queues} pushed={_n(pushed)} popped={_n(popped)} "
        f"processed={_n(sum(s.processed.values()))} errors={_n(s.processed.get('error', 0))} "
        f"http={s.http_rate:.1f}/s 5xx={_n(s.http_5xx)} "
        f"llm_errors={_n(s.llm.get('error', 0))} jobs[{jobs}] "
        f"error_logs={_n(s.logs.get('error', 0) + s.logs.get('critical', 0))} "
        f"history_sent={_n(s.history.get('sent', 0))}"
    )


class Display:
    """Redraws the block in place on a TTY; prints a line every ``line_every_s`` otherwise."""

    def __init__(self, out: TextIO, line_every_s: float = 5.0) -> None:
        self.out = out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.line_every_s = line_every_s
        self._drawn = 0
        self._last_line = 0.0

    def show(self, snap: Snapshot, final: bool = False) -> None:
        if self.tty:
            lines = render_block(snap, final)
            if self._drawn:
                self.out.write(f"\x1b[{self._drawn}F\x1b[J")
            self.out.write("\n".join(lines) + "\n")
            self._drawn = len(lines)
        elif final or time.monotonic() - self._last_line >= self.line_every_s:
            self.out.write(render_line(snap) + "\n")
            self._last_line = time.monotonic()
        self.out.flush()

    def release(self) -> None:
        """Stop redrawing (the block stays where it is and later output goes below it)."""
        self._drawn = 0
