"""Links from the admin pages into Grafana: Explore with LogQL/PromQL, and the dashboards.

Only built when ``GRAFANA_URL`` is set. LogQL comes from ``rest_service.loki.LogFilter``
(validated values only); the whole URL is then percent-encoded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from rest_service import loki

#: Loki's level values behind the names people know (one list: rest_service.loki).
LEVELS = loki.LEVELS
_SERVICE = re.compile(r"[A-Za-z0-9._\-]{1,64}")
RANGES = {"15m": "Last 15 minutes", "1h": "Last hour", "6h": "Last 6 hours", "24h": "Last 24 hours"}

#: Dashboard uids provisioned from monitoring/grafana/dashboards.
DASHBOARDS = (
    ("otel-assist-overview", "Overview"),
    ("otel-assist-logs", "Logs"),
    ("otel-assist-queues", "Queues"),
    ("otel-assist-cron", "Cron jobs"),
    ("otel-assist-user-memory", "User memory"),
)


def valid_service(value: str) -> bool:
    return _SERVICE.fullmatch(value) is not None


def _quote(value: str) -> str:
    """A LogQL/PromQL double-quoted string (values are pre-validated; escape anyway)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Link:
    title: str
    url: str
    query: str = ""


class Grafana:
    def __init__(self, base_url: str, loki_uid: str, prometheus_uid: str) -> None:
        self.base = base_url.rstrip("/")
        self.loki_uid = loki_uid
        self.prometheus_uid = prometheus_uid

    def explore(self, datasource_uid: str, ds_type: str, expr: str, time_range: str) -> str:
        panes = {
            "a": {
                "datasource": datasource_uid,
                "queries": [
                    {
                        "refId": "A",
                        "expr": expr,
                        "datasource": {"type": ds_type, "uid": datasource_uid},
                    }
                ],
                "range": {"from": f"now-{time_range}", "to": "now"},
            }
        }
        params = {"schemaVersion": "1", "orgId": "1", "panes": json.dumps(panes)}
        return f"{self.base}/explore?{urlencode(params)}"

    def logs_dashboard(
        self, service: str | None, level: str | None, cid: str | None, time_range: str
    ) -> Link:
        params = {"orgId": "1", "from": f"now-{time_range}", "to": "now"}
        if service:
            params["var-service"] = service
        if level:
            params["var-level"] = level
        if cid:
            params["var-correlation_id"] = cid
        return Link("Logs dashboard", f"{self.base}/d/otel-assist-logs/?{urlencode(params)}")

    def metric_links(self, service: str | None, time_range: str) -> list[Link]:
        job = f"job={_quote(service)}" if service else ""
        queries = (
            (
                "Request rate by service",
                f"sum by (job) (rate(http_server_request_duration_seconds_count{{{job}}}[5m]))",
            ),
            (
                "Error log rate by service",
                "sum by (job) (rate(log_records_total{"
                + ",".join(filter(None, ['level=~"error|critical"', job]))
                + "}[5m]))",
            ),
            ("Queue length", "max by (queue_name) (queue_length)"),
            ("Cron job outcomes", "sum by (job_type, status) (increase(cron_jobs_total[1h]))"),
            (
                "LLM p95 latency",
                "histogram_quantile(0.95, sum by (le, gen_ai_request_model) "
                "(rate(gen_ai_client_operation_duration_seconds_bucket[5m])))",
            ),
        )
        return [
            Link(title, self.explore(self.prometheus_uid, "prometheus", expr, time_range), expr)
            for title, expr in queries
        ]

    def dashboards(self, time_range: str) -> list[Link]:
        params = urlencode({"orgId": "1", "from": f"now-{time_range}", "to": "now"})
        return [Link(title, f"{self.base}/d/{uid}/?{params}") for uid, title in DASHBOARDS]
