"""Small line charts drawn server-side as inline SVG (no script, no external asset).

``LineChart.build`` turns a range query's series into polylines in a fixed viewBox: time
on x from the query's start to its end, values on y from 0 (or the lowest value, if below
0) to a rounded-up maximum. A step with no sample, NaN or an infinity breaks the line
rather than drawing through it; a point outside the window is not drawn. Each polyline
also carries its points as Prometheus gave them (``data-points``) and the SVG its scale,
so a test can read back what was drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from rest_service.prometheus import Series

WIDTH = 460
HEIGHT = 170
LEFT = 56  # room for the y labels
RIGHT = 8
TOP = 8
BOTTOM = 20  # room for the time labels
#: Series drawn per chart (eight distinguishable colours); the rest are counted.
MAX_SERIES = 8
MAX_LABEL = 48


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n at or above ``value`` (> 0)."""
    exponent = math.floor(math.log10(value))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = factor * 10.0 ** min(exponent, 300)
        if candidate >= value and math.isfinite(candidate):
            return candidate
    return value  # near the float maximum: no rounder number above it


def format_value(value: float, unit: str) -> str:
    """A value as operators read it on the chart's axis and legend."""
    if not math.isfinite(value):
        return str(value)
    if unit == "ratio":
        return f"{value * 100:.3g} %"
    if unit == "seconds":
        if abs(value) < 1:
            return f"{value * 1000:.3g} ms"
        return f"{value:.3g} s"
    suffix = {"per_s": "/s", "per_min": "/min"}.get(unit, "")
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.3g}M{suffix}"
    if abs(value) >= 10_000:
        return f"{value / 1000:.3g}k{suffix}"
    return f"{value:.4g}{suffix}"


@dataclass(frozen=True)
class Line:
    """One unbroken run of points: SVG coordinates and the values they came from."""

    svg_points: str
    data_points: str  # "t,v t,v" as Prometheus answered (repr of the parsed floats)
    single: tuple[float, float] | None  # a lone point is drawn as a dot


@dataclass(frozen=True)
class SeriesView:
    name: str
    colour: int  # CSS class index s0..s7
    lines: tuple[Line, ...]
    last: str


@dataclass(frozen=True)
class LineChart:
    series: tuple[SeriesView, ...]
    hidden: int  # series not drawn (over MAX_SERIES)
    y_min: float
    y_max: float
    y_labels: tuple[tuple[float, str], ...]  # (svg y, text)
    x_labels: tuple[tuple[float, str, str], ...]  # (svg x, text, anchor)
    start: int
    end: int
    step: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_edge: int = WIDTH - RIGHT
    top: int = TOP
    bottom_edge: int = HEIGHT - BOTTOM

    @property
    def empty(self) -> bool:
        return not self.series

    def x(self, t: float) -> float:
        span = max(self.end - self.start, 1)
        return round(self.left + (t - self.start) / span * (self.right_edge - self.left), 2)

    def y(self, v: float) -> float:
        span = self.y_max - self.y_min
        if math.isfinite(span) and span > 0:
            frac = (v - self.y_min) / span
        else:  # a span from -1e308 to 1e308 overflows; halved, it does not
            frac = (v / 2 - self.y_min / 2) / (self.y_max / 2 - self.y_min / 2)
        return round(self.bottom_edge - frac * (self.bottom_edge - self.top), 2)

    @classmethod
    def build(
        cls,
        series: list[Series],
        legend: tuple[str, ...],
        unit: str,
        start: int,
        end: int,
        step: int,
    ) -> LineChart:
        ordered = sorted(series, key=lambda s: _name(s, legend))
        drawn, hidden = ordered[:MAX_SERIES], max(0, len(ordered) - MAX_SERIES)
        finite = [v for s in drawn for _, v in s.points if math.isfinite(v)]
        low = min([0.0, *finite])
        high = max(finite, default=0.0)
        y_max = nice_ceiling(high) if high > 0 else (0.0 if low < 0 else 1.0)
        y_min = -nice_ceiling(-low) if low < 0 else 0.0
        chart = cls((), hidden, y_min, y_max, (), (), start, end, step)
        views = tuple(
            SeriesView(
                _name(s, legend),
                i,
                tuple(chart._lines(s.points)),
                format_value(s.points[-1][1], unit) if s.points else "",
            )
            for i, s in enumerate(drawn)
        )
        y_labels = tuple(
            (chart.y(v), format_value(v, unit)) for v in sorted({y_min, (y_min + y_max) / 2, y_max})
        )
        x_labels = (
            (float(chart.left), _hhmm(start), "start"),
            (float(chart.right_edge), _hhmm(end), "end"),
        )
        return cls(views, hidden, y_min, y_max, y_labels, x_labels, start, end, step)

    def _lines(self, points: tuple[tuple[float, float], ...]) -> list[Line]:
        runs: list[list[tuple[float, float]]] = []
        previous: float | None = None
        for t, v in points:
            if not (math.isfinite(v) and self.start <= t <= self.end):
                previous = None
                continue
            if previous is None or t - previous != self.step:
                runs.append([])
            runs[-1].append((t, v))
            previous = t
        lines = []
        for run in runs:
            coords = [(self.x(t), self.y(v)) for t, v in run]
            lines.append(
                Line(
                    " ".join(f"{x},{y}" for x, y in coords),
                    " ".join(f"{_num(t)},{v!r}" for t, v in run),
                    coords[0] if len(coords) == 1 else None,
                )
            )
        return lines


def _name(series: Series, legend: tuple[str, ...]) -> str:
    parts = [series.labels.get(label, "") for label in legend]
    text = " ".join(p for p in parts if p) or "(no labels)"
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _num(t: float) -> str:
    return str(int(t)) if t.is_integer() else repr(t)


def _hhmm(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M UTC")
