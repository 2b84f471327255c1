"""Small pure helpers that turn rows into what the templates show: durations, times,
status colours, pretty payloads and the inline SVG bar charts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

STATUS_CLASS = {
    "completed": "ok",
    "running": "run",
    "scheduled": "idle",
    "failed": "bad",
    "timed_out": "warn",
    "missed": "warn",
    "skipped": "warn",
    "cancelled": "idle",
}


def status_class(status: str) -> str:
    return STATUS_CLASS.get(status, "idle")


def fmt_duration_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(ms / 1000, 60)
    return f"{int(minutes)} min {seconds:.0f} s"


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return fmt_duration_ms(seconds * 1000)


def fmt_time(ts: datetime | None) -> str:
    if ts is None:
        return "-"
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def pretty_payload(raw: str | None) -> str:
    """Indented JSON when the stored text parses, else the text as it is (escaped later)."""
    if raw is None:
        return ""
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return raw


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    width: float  # 0..100, share of the largest bar
    y: int


@dataclass(frozen=True)
class BarChart:
    """A horizontal bar chart drawn as inline SVG by the template (no JavaScript)."""

    title: str
    bars: list[Bar]
    height: int

    ROW = 22


def bar_chart(title: str, counts: dict[str, int], limit: int = 8) -> BarChart:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(items) > limit:
        rest = sum(n for _, n in items[limit - 1 :])
        items = [*items[: limit - 1], ("(others)", rest)]
    top = max((n for _, n in items), default=0) or 1
    bars = [
        Bar(label, n, round(100 * n / top, 1), i * BarChart.ROW)
        for i, (label, n) in enumerate(items)
    ]
    return BarChart(title, bars, max(1, len(bars)) * BarChart.ROW)
