"""The admin Metrics page against the real Prometheus (Debian package), fed by real
instrumented processes (tests/monitoring/workload.py: the rest_service, assistant and cron
roles, metrics on their own Prometheus endpoints, scraped every second).

What is checked: every plotted point equals Prometheus's ``query_range`` answer for the
same expression and window, read back both from the points the page carries and from the
SVG coordinates; the expressions are the dashboards' own (one truth); Prometheus down,
hung or answering nonsense is a notice on a 200 page; bad ``range``/``step`` is a 422
naming the field, whatever the bytes.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rest_service.admin import metrics_pages, promql
from rest_service.admin.line_chart import LineChart
from rest_service.core.config import Settings
from rest_service.prometheus import PrometheusUnavailable, Series, parse_matrix
from tests import servers
from tests.polling import poll
from tests.rest_service.conftest import Running
from tests.rest_service.test_logs_admin import admin_app

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "monitoring" / "grafana" / "dashboards"
ROLES = {"rest_service": "rest_service", "assistant": "assistant_service", "cron": "cron_service"}

NASTY = st.text(
    alphabet=st.sampled_from(
        [*"0123456789smhdSMHD-+. _,e\x00\x01\x7f\n\t%/", "\udcff", "\ud800", "\u2028", "٣", "💥"]
    ),
    max_size=24,
)
HOSTILE = st.one_of(
    NASTY,
    st.integers(-(2**80), 2**80).map(str),
    st.builds(
        lambda n, unit: f"{n}{unit}",
        st.integers(-(10**12), 10**12),
        st.sampled_from(["", "s", "m", "h", "d", "w", "y", "ms", "S"]),
    ),
)


# --------------------------------------------------------------------------- real Prometheus


@dataclass
class Scraped:
    prometheus: servers.Prometheus
    control: Path


def _up(prom: servers.Prometheus) -> dict[str, float]:
    answer = httpx.get(f"{prom.url}/api/v1/query", params={"query": "up"}, timeout=5).json()
    return {r["metric"]["job"]: float(r["value"][1]) for r in answer["data"]["result"]}


def _instant(prom: servers.Prometheus, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prom.url}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """Three instrumented processes run a short workload (with a burst of HTTP 500s) while
    Prometheus scrapes them; then they stop, so every point of the window is settled and a
    query asked twice answers the same."""
    workdir = tmp_path_factory.mktemp("metrics-page")
    control = workdir / "control"
    control.mkdir()
    ports = {role: servers.free_port() for role in ROLES}
    procs: dict[str, servers.ManagedProcess] = {}
    scrape = "".join(
        f"  - job_name: {service}\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{ports[role]}']\n"
        for role, service in ROLES.items()
    )
    prom = servers.start_prometheus(
        workdir / "prometheus",
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n" + scrape,
    )
    try:
        for role in ROLES:
            env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
            env.update(
                {
                    "PYTHONPATH": str(ROOT),
                    "TMPDIR": str(workdir),
                    "OTEL_METRICS_EXPORTER": "prometheus",
                    "OTEL_EXPORTER_PROMETHEUS_PORT": str(ports[role]),
                    "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
                    "OTEL_LOGS_EXPORTER": "none",
                    "WORKLOAD_HTTP_PORT": str(servers.free_port()),
                }
            )
            procs[role] = servers.ManagedProcess(
                role,
                [sys.executable, "-m", "tests.monitoring.workload", role, str(control)],
                ready=functools.partial(servers.http_ok, f"http://127.0.0.1:{ports[role]}/metrics"),
                log_path=workdir / f"workload-{role}.log",
                env=env,
            ).start()
        window = metrics_pages.Window.parse("15m", "2s", 0)
        queries = [promql.expand(c.expr, window.step, window.range_seconds) for c in promql.CHARTS]
        poll(lambda: all(_instant(prom, q) for q in queries), 90, "every chart's query to answer")
        # 20 s of scrapes per target: a 2 s step sees every series at many points (a
        # gauge scraped for 1 s could fall between two steps once its target is gone).
        poll(
            lambda: len(_instant(prom, "count_over_time(up[1m]) >= 20")) == len(ROLES),
            90,
            "20 scrapes of every target",
        )
        (control / "http_fail").touch()  # a burst of 500s: the error ratio is not all 0
        poll(
            lambda: any(
                float(r["value"][1]) > 0
                for r in _instant(prom, queries[1])
                if r["metric"].get("job") == "rest_service"
            ),
            60,
            "a non-zero 5xx ratio",
        )
        (control / "http_fail").unlink()
        for proc in procs.values():
            proc.stop()
        stopped = time.time()
        # The page's last point is on a multiple of its step (2 s), so it can lie up to
        # 2 s before "now": wait until that point is past the stop, burst included.
        poll(lambda: time.time() > stopped + 3, 10, "a step past the stop")
        # Settled: Prometheus has seen every target go down (its staleness markers are in).
        poll(lambda: _up(prom) == dict.fromkeys(ROLES.values(), 0.0), 30, "targets seen down")
        yield Scraped(prom, control)
    finally:
        for proc in procs.values():
            proc.stop()
        prom.process.stop()


@pytest.fixture
async def app_on(scraped: Scraped, sqlite_url: str) -> AsyncIterator[Running]:
    async for running in admin_app(
        sqlite_url, prometheus_url=scraped.prometheus.url, prometheus_timeout_seconds=10
    ):
        yield running


class _Page(HTMLParser):
    """The charts of a Metrics page: scale, and per series the lines' points."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, Any]] = {}
        self.current: dict[str, Any] | None = None
        self.series: list[dict[str, str]] | None = None
        self.links: dict[str, str] = {}
        self._chart_key: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "figure" and "data-chart" in a:
            self._chart_key = a["data-chart"]
        elif tag == "svg" and "data-start" in a and self._chart_key:
            self.current = {"scale": a, "series": {}}
            self.charts[self._chart_key] = self.current
        elif tag == "g" and "data-series" in a and self.current is not None:
            self.series = self.current["series"].setdefault(a["data-series"], [])
        elif tag in ("polyline", "circle") and self.series is not None:
            self.series.append(a)
        elif tag == "a" and "panel-link" in a.get("class", "") and self._chart_key:
            self.links[self._chart_key] = a["href"]


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _query_range(prom: servers.Prometheus, expr: str, start: int, end: int, step: int) -> Any:
    return httpx.post(
        f"{prom.url}/api/v1/query_range",
        data={"query": expr, "start": start, "end": end, "step": step},
        timeout=10,
    ).json()


async def test_every_plotted_point_is_prometheus_answer(app_on: Running, scraped: Scraped) -> None:
    resp = await app_on.client.get("/admin/metrics", params={"range": "15m", "step": "2s"})
    assert resp.status_code == 200, resp.text[:2000]
    assert "Content-Security-Policy" in resp.headers and "<script" not in resp.text
    page = _parse(resp.text)
    assert set(page.charts) == {c.key for c in promql.CHARTS}, resp.text
    plotted_values: dict[str, dict[str, list[float]]] = {}
    for chart in promql.CHARTS:
        drawn = page.charts[chart.key]
        scale = {k: float(v) for k, v in drawn["scale"].items() if k.startswith("data-")}
        start, end, step = int(scale["data-start"]), int(scale["data-end"]), int(scale["data-step"])
        assert step == 2 and end - start == 900 and end % step == 0
        expr = promql.expand(chart.expr, step, 900)
        answer = parse_matrix(_query_range(scraped.prometheus, expr, start, end, step))
        expected = {
            LineChart.build([s], chart.legend, chart.unit, start, end, step).series[0].name: [
                (t, v) for t, v in s.points if math.isfinite(v)
            ]
            for s in answer
        }
        got: dict[str, list[tuple[float, float]]] = {}
        for name, shapes in drawn["series"].items():
            pts: list[tuple[float, float]] = []
            for shape in shapes:
                data = [tuple(map(float, p.split(","))) for p in shape["data-points"].split()]
                svg = (
                    [tuple(map(float, p.split(","))) for p in shape["points"].split()]
                    if "points" in shape
                    else [(float(shape["cx"]), float(shape["cy"]))]
                )
                assert len(svg) == len(data)
                # The drawn coordinates are those values on the chart's scale.
                for (x, y), (t, v) in zip(svg, data, strict=True):
                    left, right = scale["data-left"], scale["data-right"]
                    top, bottom = scale["data-top"], scale["data-bottom"]
                    lo, hi = scale["data-y-min"], scale["data-y-max"]
                    assert x == pytest.approx(
                        left + (t - start) / (end - start) * (right - left), abs=0.01
                    )
                    assert y == pytest.approx(
                        bottom - (v - lo) / (hi - lo) * (bottom - top), abs=0.01
                    )
                pts.extend((t, v) for t, v in data)
            got[name] = pts
        assert got == expected, chart.key
        plotted_values[chart.key] = {n: [v for _, v in p] for n, p in got.items()}

    # The workload's real figures are on the page (not just "some series").
    assert max(plotted_values["request_rate"]["rest_service"]) > 0.5
    assert len(plotted_values["request_rate"]["rest_service"]) >= 10
    errors = plotted_values["error_ratio"]["rest_service"]
    assert max(errors) > 0, plotted_values  # the burst of 500s
    assert min(plotted_values["error_ratio"]["rest_service"]) == 0
    assert max(plotted_values["latency_p95"]["rest_service"]) > 0
    assert set(plotted_values["queue_length"]) == {"to_secretary", "to_telegram"}
    assert max(plotted_values["queue_age"]["to_secretary"]) == 0.5
    assert {"gpt-4o-mini success"} <= set(plotted_values["llm_calls"])
    assert {"gpt-4o-mini input", "gpt-4o-mini output"} <= set(plotted_values["llm_tokens"])
    assert any(
        n.endswith(" completed") and max(v) > 0 for n, v in plotted_values["cron_runs"].items()
    )


async def test_grafana_panel_links(
    scraped: Scraped, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAFANA_URL", "http://grafana.example:3000/")
    async for app in admin_app(sqlite_url, prometheus_url=scraped.prometheus.url):
        resp = await app.client.get("/admin/metrics", params={"range": "6h"})
        links = _parse(resp.text).links
        assert links == {
            c.key: f"http://grafana.example:3000/d/{c.dashboard_uid}/?orgId=1"
            f"&viewPanel=panel-{c.panel_id}&from=now-6h&to=now"
            for c in promql.CHARTS
        }
        assert 'href="/admin/metrics" class="on"' in resp.text  # the nav marks the page


def test_every_chart_is_its_dashboard_panel() -> None:
    """One truth: the page's PromQL is the panel's target, byte for byte, and the legend
    labels are the ones the panel's legend shows."""
    boards = {}
    for path in DASHBOARDS.glob("*.json"):
        board = json.loads(path.read_text())
        boards[board["uid"]] = {p["id"]: p for p in board["panels"]}
    for chart in promql.CHARTS:
        panel = boards[chart.dashboard_uid][chart.panel_id]
        target = panel["targets"][chart.target]
        assert target["expr"] == chart.expr, chart.key
        assert target["datasource"]["uid"] == "prometheus"
        shown = re.findall(r"\{\{(\w+)\}\}", target["legendFormat"])
        assert tuple(shown) == chart.legend, (chart.key, target["legendFormat"])


def test_expanded_queries_name_only_catalog_metrics() -> None:
    from tests.monitoring.helpers import contract_metric_names, promql_metric_names

    known = contract_metric_names()
    for chart in promql.CHARTS:
        expr = promql.expand(chart.expr, 15, 3600)
        assert "$" not in expr
        assert promql_metric_names(expr) <= known, chart.key


# --------------------------------------------------------------------------- outages


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a wedged Prometheus)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize("case", ["refused", "hung", "not_prometheus", "unset"])
async def test_prometheus_unusable_is_a_notice(
    case: str, sqlite_url: str, hung_port: int, scraped: Scraped
) -> None:
    url = {
        "refused": f"http://user:pw-secret@127.0.0.1:{servers.free_port()}",
        "hung": f"http://127.0.0.1:{hung_port}",
        "not_prometheus": f"{scraped.prometheus.url}/no-such-prefix",  # real 404 text
        "unset": "",
    }[case]
    async for app in admin_app(sqlite_url, prometheus_url=url, prometheus_timeout_seconds=0.5):
        resp = await app.client.get("/admin/metrics")
        assert resp.status_code == 200
        notice = re.search(r'<p class="note" role="status">([^<]*)</p>', resp.text)
        assert notice, resp.text[-2000:]
        expected = {
            "refused": "is not reachable (ConnectError)",
            "hung": "did not answer within 0.5 s",
            "not_prometheus": "answered 404: 404 page not found",
            "unset": "Prometheus is not configured: set PROMETHEUS_URL",
        }[case]
        assert expected in notice.group(1)
        assert "pw-secret" not in resp.text
        assert "<svg" not in resp.text


@pytest.mark.parametrize(
    "url", ["http://[::1", "ftp://prometheus.example", "prometheus:9090", "http://", "http://h:x/"]
)
def test_a_malformed_prometheus_url_fails_at_startup(url: str) -> None:
    with pytest.raises(ValidationError, match="PROMETHEUS_URL"):
        Settings(prometheus_url=url)


def test_prometheus_url_defaults_and_empty() -> None:
    assert Settings().prometheus_url == "http://localhost:9090"
    assert Settings(prometheus_url=" ").prometheus_url is None


# --------------------------------------------------------------------------- bad input


@pytest.fixture
async def app_down(sqlite_url: str) -> AsyncIterator[Running]:
    """Prometheus refused (nothing listens): input checks without waiting on queries."""
    url = f"http://127.0.0.1:{servers.free_port()}"
    async for running in admin_app(sqlite_url, prometheus_url=url):
        yield running


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"range": "-1h"}, "range"),
        ({"range": "99999999999999999999999d"}, "range"),
        ({"range": "1m"}, "range"),
        ({"range": "8d"}, "range"),
        ({"range": "1w"}, "range"),
        ({"range": "1h", "step": "0"}, "step"),
        ({"range": "1h", "step": "2h"}, "step"),
        ({"range": "7d", "step": "1s"}, "step"),
        ({"step": "1d"}, "step"),
        ({"step": "5s<script>"}, "step"),
    ],
)
async def test_bad_parameters_are_422_naming_the_field(
    app_down: Running, params: dict[str, str], field: str
) -> None:
    resp = await app_down.client.get("/admin/metrics", params=params)
    assert resp.status_code == 422
    error = re.search(r'<p class="error" role="alert">([^<]*)</p>', resp.text)
    assert error and error.group(1).startswith(field + " "), resp.text[-1500:]
    assert "<script>" not in resp.text


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    range_raw=HOSTILE,
    step_raw=HOSTILE | st.none(),
    repeated=st.lists(st.tuples(st.sampled_from(["range", "step", "Range", "x"]), HOSTILE)),
)
async def test_hostile_parameters_are_422_or_a_page(
    app_down: Running, range_raw: str, step_raw: str | None, repeated: list[tuple[str, str]]
) -> None:
    """Raw bytes on the wire (lone surrogates as their UTF-8 encoding, control characters,
    ints past 64 bits, negative ranges, a parameter given twice): a page or a 422 naming
    the field, never a 500."""
    pairs = [("range", range_raw), *([("step", step_raw)] if step_raw is not None else [])]
    query = "&".join(
        f"{k}={quote(v, safe='', errors='surrogatepass')}" for k, v in [*pairs, *repeated]
    )
    resp = await app_down.client.get("/admin/metrics?" + query)
    assert resp.status_code in (200, 422), resp.text[:500]
    if resp.status_code == 422:
        error = re.search(r'<p class="error" role="alert">([^<]*)</p>', resp.text)
        assert error and re.match(r"(range|step) ", error.group(1))
    else:
        step = re.search(r"one point every (\d+) s", resp.text)
        assert step and 1 <= int(step.group(1)) <= 3600
        assert "is not reachable" in resp.text


@settings(max_examples=400)
@given(range_raw=HOSTILE | st.none(), step_raw=HOSTILE | st.none(), now=st.floats(1e9, 4e9))
def test_window_is_bounded_or_refused(
    range_raw: str | None, step_raw: str | None, now: float
) -> None:
    try:
        w = metrics_pages.Window.parse(range_raw, step_raw, now)
    except metrics_pages.InvalidQuery as exc:
        assert re.match(r"(range|step) ", str(exc))
        return
    assert 300 <= w.range_seconds <= 7 * 86_400
    assert 1 <= w.step <= 3600
    assert w.end % w.step == 0 and w.start <= w.end <= now
    assert (w.end - w.start) // w.step <= metrics_pages.MAX_POINTS
    assert w.range_seconds - w.step < w.end - w.start <= w.range_seconds


# --------------------------------------------------------------------------- Prometheus answers

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
_VALUE = st.sampled_from(["NaN", "+Inf", "-Inf", "0", "1e308", "-1e308", "5e-324", "\udcff", ""])


@settings(max_examples=300)
@given(
    payload=_JSON
    | st.fixed_dictionaries(
        {
            "status": st.sampled_from(["success", "error", 1]),
            "data": st.fixed_dictionaries(
                {
                    "resultType": st.sampled_from(["matrix", "vector", None]),
                    "result": st.lists(
                        st.fixed_dictionaries(
                            {
                                "metric": st.dictionaries(st.text(max_size=6), _JSON, max_size=3),
                                "values": st.lists(
                                    st.tuples(
                                        st.integers(0, 2**40) | st.floats(),
                                        _VALUE | st.floats().map(repr),
                                    ),
                                    max_size=6,
                                ),
                            }
                        ),
                        max_size=4,
                    ),
                }
            ),
        }
    )
)
def test_any_answer_is_series_or_a_clear_error(payload: Any) -> None:
    """Whatever sits at PROMETHEUS_URL answers, the page gets series it can draw (every
    coordinate inside the viewBox) or a notice."""
    try:
        series = parse_matrix(payload)
    except PrometheusUnavailable as exc:
        assert str(exc).startswith("Prometheus")
        return
    chart = LineChart.build(series, ("a", "b"), "per_s", 0, 900, 5)
    for view in chart.series:
        for line in view.lines:
            for pair in line.svg_points.split():
                x, y = map(float, pair.split(","))
                assert math.isfinite(x) and math.isfinite(y)
                assert 0 <= y <= chart.height


@example(values=[5e-324, 0.0], unit="per_s", gaps=set())  # a subnormal maximum
@example(values=[-1.7e308, 1.7e308, math.nan, math.inf, 0.0], unit="ratio", gaps={1})
@settings(max_examples=300)
@given(
    values=st.lists(
        st.floats(allow_nan=True, allow_infinity=True, width=64)
        | st.integers(-(2**70), 2**70).map(float),
        max_size=30,
    ),
    unit=st.sampled_from(["per_s", "per_min", "ratio", "seconds", "count"]),
    gaps=st.sets(st.integers(0, 29)),
)
def test_chart_draws_finite_values_on_scale_and_breaks_at_gaps(
    values: list[float], unit: str, gaps: set[int]
) -> None:
    points = tuple((1000.0 + 10 * i, v) for i, v in enumerate(values) if i not in gaps)
    chart = LineChart.build([Series({"a": "x"}, points)], ("a",), unit, 1000, 1290, 10)
    drawn = [
        tuple(map(float, p.split(",")))
        for view in chart.series
        for line in view.lines
        for p in line.data_points.split()
    ]
    assert drawn == [(t, v) for t, v in points if math.isfinite(v)]
    for view in chart.series:
        for line in view.lines:
            times = [float(p.split(",")[0]) for p in line.data_points.split()]
            assert all(b - a == 10 for a, b in itertools.pairwise(times))  # no jump
            for pair in line.svg_points.split():
                x, y = map(float, pair.split(","))
                assert chart.left <= x <= chart.right_edge
                assert chart.top - 0.01 <= y <= chart.bottom_edge + 0.01
