"""The admin Metrics page in Debian's chromium (Playwright), over a demo scraped by the real
Prometheus (Debian package, every second). The screenshots docs/demo-and-admin.md shows are
refreshed with OTEL_ASSIST_DOC_SCREENSHOTS=1 (see Tab.shot).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from rest_service.admin import promql
from tests import servers
from tests.browser.conftest import GRAFANA, Site, Tab
from tests.demo_process import start_demo
from tests.polling import poll

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Prometheus]:
    prom = servers.start_prometheus(
        tmp_path_factory.mktemp("metrics-prometheus"),
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n",
    )
    yield prom
    prom.process.stop()


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, prometheus: servers.Prometheus
) -> Iterator[Site]:
    demo = start_demo(
        tmp_path_factory.mktemp("metrics-demo"),
        "--rate",
        "4",
        "--seed",
        "7",
        env={"GRAFANA_URL": GRAFANA, "PROMETHEUS_URL": prometheus.url},
    )
    try:
        # Now that the demo's port is known, Prometheus scrapes its /metrics.
        target = urlsplit(demo.base_url).netloc
        prometheus.config_path.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: demo\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        prometheus.reload()

        def rate_seen() -> bool:
            answer = httpx.get(
                f"{prometheus.url}/api/v1/query",
                params={"query": promql.expand(promql.CHARTS[0].expr, 5, 900)},
                timeout=5,
            ).json()
            return bool(answer["data"]["result"])

        poll(rate_seen, 90, "a request rate in Prometheus")
        yield Site(demo, "", "", 0)
    finally:
        code = demo.stop(timeout=120)
        assert code == 0, demo.stdout


def test_metrics_page_charts_nav_and_outage(admin: Tab, prometheus: servers.Prometheus) -> None:
    page = admin.page
    admin.go("/admin/jobs")
    page.get_by_role("link", name="Metrics", exact=True).click()
    page.wait_for_load_state()
    assert urlsplit(page.url).path == "/admin/metrics"
    assert page.locator("header.top nav a.on").inner_text() == "Metrics"

    def drawn() -> bool:
        """A line across a good part of the chart (the demo's first minute or so)."""
        admin.go("/admin/metrics?range=5m&step=2s")
        lines = page.locator("#chart-request_rate svg polyline")
        box = lines.first.bounding_box() if lines.count() else None
        return box is not None and box["width"] > 60

    poll(drawn, 90, "the request-rate chart drawn")
    figures = page.locator("figure.line-chart")
    assert figures.count() == len(promql.CHARTS)
    for chart in promql.CHARTS:
        fig = page.locator(f"#chart-{chart.key}")
        assert fig.locator("figcaption b").inner_text() == chart.title
        assert fig.is_visible()
        link = fig.get_by_role("link", name="Grafana panel").get_attribute("href")
        assert link.startswith(f"{GRAFANA}/d/{chart.dashboard_uid}/?")
        assert f"viewPanel=panel-{chart.panel_id}" in link
    line = page.locator("#chart-request_rate svg polyline").first
    assert line.is_visible()
    # The stylesheet applied (no inline style: the CSP allows only 'self' stylesheets).
    stroke = line.evaluate("el => getComputedStyle(el).stroke")
    assert stroke not in ("", "none")
    assert not [m for m in admin.console if "Content Security Policy" in m], admin.console
    assert page.locator(".note").count() == 0
    admin.shot("metrics", full_page=True, docs=True)

    # On a phone-sized window the charts shrink to fit: nothing scrolls sideways.
    page.set_viewport_size({"width": 420, "height": 800})
    admin.go("/admin/metrics?range=5m&step=2s")
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    svg_box = page.locator("#chart-request_rate svg").bounding_box()
    assert svg_box is not None and svg_box["x"] + svg_box["width"] <= 420
    page.set_viewport_size({"width": 1360, "height": 900})

    # A bad step: 422 with the message, the form still there.
    resp = admin.go("/admin/metrics?range=1h&step=-5s")
    assert resp.status == 422
    assert page.get_by_role("alert").inner_text().startswith("step must be")

    # Prometheus stops: the page still answers, with a notice and no charts.
    prometheus.process.stop()
    resp = admin.go("/admin/metrics")
    assert resp.status == 200
    assert "is not reachable" in page.get_by_role("status").inner_text()
    assert page.locator("figure.line-chart").count() == 0
    admin.shot("metrics-prometheus-down", docs=True)
