"""The admin Metrics page: the dashboards' key figures read from Prometheus's HTTP API and
drawn server-side as small SVG line charts, each linking to its Grafana panel.

The expressions are the dashboards' own (``rest_service.admin.promql``). ``range`` and
``step`` arrive as plain strings: a bad value is a 422 page naming the field, and nothing is
asked of Prometheus. Prometheus unreachable, slow or refusing is a notice on a 200 page;
all queries of one page share ``PROMETHEUS_TIMEOUT_SECONDS``, so the page never hangs.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from rest_service.admin import promql
from rest_service.admin.line_chart import LineChart
from rest_service.admin.views import SessionDep, _ctx, render
from rest_service.prometheus import PrometheusClient, PrometheusUnavailable, Series

router = APIRouter(prefix="/admin", include_in_schema=False)

RANGES = ("15m", "1h", "6h", "24h", "48h")
DEFAULT_RANGE = "1h"
MIN_RANGE_SECONDS = 5 * 60
MAX_RANGE_SECONDS = 7 * 86_400
MIN_STEP_SECONDS = 1
MAX_STEP_SECONDS = 3600
#: Points per series the page asks for at most (the chart is 400 pixels wide).
MAX_POINTS = 1000
#: The default step gives about this many points per series.
DEFAULT_POINTS = 240
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION = re.compile(r"([0-9]{1,7})([smhd]?)")


class InvalidQuery(ValueError):
    """A query parameter the page cannot use; the message names it."""


def _duration(raw: str, what: str, units: str) -> int:
    """``raw`` such as ``90s``, ``15m``, ``6h`` (``units`` lists those allowed; a bare
    number is seconds) as whole seconds."""
    text = raw.strip()
    match = _DURATION.fullmatch(text) if text.isascii() else None
    if match is None or (match.group(2) and match.group(2) not in units):
        shown = "/".join(units)
        raise InvalidQuery(f"{what} must be a whole number followed by one of {shown}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]


@dataclass(frozen=True)
class Window:
    """The page's time window: whole seconds, ``end`` on a multiple of ``step`` so that
    the same query asked again (by Grafana, a test, an operator) answers the same points."""

    range_text: str
    range_seconds: int
    step: int
    start: int
    end: int

    @classmethod
    def parse(cls, range_raw: str | None, step_raw: str | None, now: float) -> Window:
        range_text = (range_raw or "").strip() or DEFAULT_RANGE
        seconds = _duration(range_text, "range", "smhd")
        if not MIN_RANGE_SECONDS <= seconds <= MAX_RANGE_SECONDS:
            raise InvalidQuery("range must be between 5m and 7d")
        if step_raw is None or not step_raw.strip():
            step = max(MIN_STEP_SECONDS, math.ceil(seconds / DEFAULT_POINTS))
        else:
            step = _duration(step_raw, "step", "smh")
            if not MIN_STEP_SECONDS <= step <= MAX_STEP_SECONDS:
                raise InvalidQuery("step must be between 1s and 1h")
            if seconds // step > MAX_POINTS:
                raise InvalidQuery(
                    f"step is too small for the range: at most {MAX_POINTS} points per chart"
                )
        end = int(now) // step * step
        start = end - seconds // step * step
        return cls(range_text, seconds, step, start, end)

    @property
    def start_time(self) -> datetime:
        return datetime.fromtimestamp(self.start, UTC)

    @property
    def end_time(self) -> datetime:
        return datetime.fromtimestamp(self.end, UTC)


@dataclass(frozen=True)
class ChartView:
    chart: promql.Chart
    query: str
    drawing: LineChart | None
    error: str | None
    grafana_url: str | None


async def _query_all(
    client: PrometheusClient, queries: list[str], window: Window
) -> list[list[Series] | PrometheusUnavailable]:
    async with client.client() as http:

        async def one(expr: str) -> list[Series] | PrometheusUnavailable:
            try:
                return await client.query_range(http, expr, window.start, window.end, window.step)
            except PrometheusUnavailable as exc:
                return exc

        try:
            async with asyncio.timeout(client.timeout):
                return list(await asyncio.gather(*(one(q) for q in queries)))
        except TimeoutError:
            late = PrometheusUnavailable(
                f"Prometheus at {client.shown} did not answer within {client.timeout:g} s"
            )
            return [late for _ in queries]


def _panel_url(base: str, chart: promql.Chart, range_text: str) -> str:
    params = urlencode(
        {
            "orgId": "1",
            "viewPanel": f"panel-{chart.panel_id}",
            "from": f"now-{range_text}",
            "to": "now",
        }
    )
    return f"{base}/d/{chart.dashboard_uid}/?{params}"


@router.get("/metrics", name="admin_metrics")
async def metrics_page(
    request: Request,
    session: SessionDep,
    range: str | None = None,
    step: str | None = None,
) -> HTMLResponse:
    ctx = _ctx(request)
    try:
        window = Window.parse(range, step, time.time())
    except InvalidQuery as exc:
        return render(
            request,
            "metrics.html",
            session,
            status_code=422,
            error=str(exc),
            notice=None,
            charts=[],
            window=None,
            ranges=RANGES,
            chosen_range=DEFAULT_RANGE,
            chosen_step="",
            prometheus=None,
        )
    client = PrometheusClient(ctx.settings)
    queries = [promql.expand(c.expr, window.step, window.range_seconds) for c in promql.CHARTS]
    answers = await _query_all(client, queries, window)
    failures = [a for a in answers if isinstance(a, PrometheusUnavailable)]
    notice = str(failures[0]) if failures and len(failures) == len(answers) else None
    grafana = ctx.grafana
    views = [
        ChartView(
            chart,
            query,
            None
            if isinstance(answer, PrometheusUnavailable)
            else LineChart.build(
                answer, chart.legend, chart.unit, window.start, window.end, window.step
            ),
            str(answer) if isinstance(answer, PrometheusUnavailable) else None,
            _panel_url(grafana.base, chart, window.range_text) if grafana else None,
        )
        for chart, query, answer in zip(promql.CHARTS, queries, answers, strict=True)
    ]
    return render(
        request,
        "metrics.html",
        session,
        error=None,
        notice=notice,
        charts=[] if notice else views,
        window=window,
        ranges=RANGES,
        chosen_range=window.range_text,
        chosen_step=(step or "").strip(),
        prometheus=client.shown,
    )
