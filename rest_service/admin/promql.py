"""The PromQL behind the admin Metrics page: the Grafana dashboards' own expressions.

One truth: each chart names the dashboard panel it mirrors (uid, panel id, target index) and
carries that panel's expression verbatim, Grafana variables included. The page fills the
variables in (``expand``); ``tests/rest_service/test_metrics_admin.py`` compares every
expression here with ``monitoring/grafana/dashboards/*.json``, so a dashboard change that
is not made here (or the reverse) fails a test instead of showing operators two figures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Grafana's Prometheus datasource ``timeInterval`` (monitoring/grafana/provisioning):
#: the scrape interval Grafana assumes when it computes ``$__rate_interval``.
SCRAPE_INTERVAL_SECONDS = 15

_VARIABLE = re.compile(r"\$(\w+)")


@dataclass(frozen=True)
class Chart:
    """One small chart on the page and the dashboard panel it mirrors."""

    key: str
    title: str
    unit: str  # how values are shown: "per_s", "per_min", "ratio", "seconds", "count"
    expr: str  # the panel target's ``expr``, exactly as in the dashboard JSON
    legend: tuple[str, ...]  # label names that tell the series apart
    dashboard_uid: str
    panel_id: int
    target: int = 0  # index into the panel's ``targets``


CHARTS: tuple[Chart, ...] = (
    Chart(
        "request_rate",
        "Request rate by service",
        "per_s",
        'sum by (job) (rate(http_server_request_duration_seconds_count{job=~"$service"}'
        "[$__rate_interval]))",
        ("job",),
        "otel-assist-overview",
        6,
    ),
    Chart(
        "error_ratio",
        "5xx error ratio by service",
        "ratio",
        "(sum by (job) (rate(http_server_request_duration_seconds_count"
        '{job=~"$service", http_response_status_code=~"5.."}[$__rate_interval])) '
        "or 0 * sum by (job) (rate(http_server_request_duration_seconds_count"
        '{job=~"$service"}[$__rate_interval]))) / sum by (job) '
        '(rate(http_server_request_duration_seconds_count{job=~"$service"}[$__rate_interval]))',
        ("job",),
        "otel-assist-overview",
        7,
    ),
    Chart(
        "latency_p95",
        "Request latency p95 by service",
        "seconds",
        "histogram_quantile(0.95, sum by (job, le) "
        '(rate(http_server_request_duration_seconds_bucket{job=~"$service"}'
        "[$__rate_interval])))",
        ("job",),
        "otel-assist-overview",
        8,
        target=1,
    ),
    Chart(
        "queue_length",
        "Queue length",
        "count",
        'max by (queue_name) (queue_length{queue_name=~"$queue"})',
        ("queue_name",),
        "otel-assist-queues",
        1,
    ),
    Chart(
        "queue_age",
        "Oldest message age",
        "seconds",
        'max by (queue_name) (queue_oldest_message_age_seconds{queue_name=~"$queue"})',
        ("queue_name",),
        "otel-assist-queues",
        2,
    ),
    Chart(
        "llm_calls",
        "LLM calls by model and status",
        "per_s",
        'sum by (model, status) (rate(llm_requests_total{job=~"$service"}[$__rate_interval]))',
        ("model", "status"),
        "otel-assist-overview",
        12,
    ),
    Chart(
        "llm_tokens",
        "LLM tokens per minute",
        "per_min",
        "sum by (gen_ai_request_model, gen_ai_token_type) "
        '(rate(gen_ai_client_token_usage_sum{job=~"$service"}[$__rate_interval])) * 60',
        ("gen_ai_request_model", "gen_ai_token_type"),
        "otel-assist-overview",
        15,
    ),
    Chart(
        "cron_runs",
        "Cron runs per minute by status",
        "per_min",
        'sum by (job_type, status) (rate(cron_jobs_total{job_type=~"$job_type"}'
        "[$__rate_interval])) * 60",
        ("job_type", "status"),
        "otel-assist-cron",
        2,
    ),
)


def rate_interval(step_seconds: int, scrape_seconds: int = SCRAPE_INTERVAL_SECONDS) -> int:
    """Grafana's ``$__rate_interval``: max(interval + scrape interval, 4 x scrape interval),
    with the page's step as the interval, so the page and the panel smooth alike."""
    return max(step_seconds + scrape_seconds, 4 * scrape_seconds)


def expand(expr: str, step_seconds: int, range_seconds: int) -> str:
    """``expr`` with Grafana's variables filled in as the dashboards' defaults have them:
    every multi-value variable at "All" (``.*``, the generator's ``allValue``),
    ``$__rate_interval`` from the step and ``$__range`` from the page's range."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "__rate_interval":
            return f"{rate_interval(step_seconds)}s"
        if name == "__range":
            return f"{range_seconds}s"
        if name.startswith("__"):
            raise ValueError(f"Grafana variable ${name} has no value on the Metrics page")
        return ".*"

    return _VARIABLE.sub(value, expr)
