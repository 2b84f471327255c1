"""Generate the Grafana dashboards in ``monitoring/grafana/dashboards/`` from code.

    python monitoring/grafana/generate.py          # write the JSON files
    python monitoring/grafana/generate.py --check  # exit 1 if a committed file is stale

A small typed builder for Grafana's classic dashboard JSON model (schemaVersion 41, read by
Grafana 12 and newer through file provisioning). Datasources are referenced by the fixed
uids provisioned in ``provisioning/datasources/datasources.yml``. Metric names and labels
are the ones in ``docs/telemetry-contract.md``; SQL reads the rest_service tables through
the read-only ``grafana_ro`` role; LogQL uses only the index labels ``service_name`` and
``deployment_environment_name`` and structured metadata for everything else.

The tests import ``DASHBOARDS`` and run every PromQL query against a real Prometheus and
every SQL query against a real Postgres.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from otel_assist.event_types import LogEventType

SCHEMA_VERSION = 41
OUT_DIR = Path(__file__).resolve().parent / "dashboards"
TAGS = ["otel-assist"]

PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
LOKI = {"type": "loki", "uid": "loki"}
POSTGRES = {"type": "grafana-postgresql-datasource", "uid": "postgres"}

Json = dict[str, Any]
Lang = Literal["promql", "logql", "sql"]


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class Query:
    """One target of a panel."""

    expr: str
    lang: Lang
    legend: str = ""
    instant: bool = False
    table: bool = False  # PromQL: format table; SQL: format table (else time series)

    def to_json(self, ref_id: str) -> Json:
        if self.lang == "promql":
            target: Json = {
                "datasource": PROMETHEUS,
                "editorMode": "code",
                "expr": self.expr,
                "legendFormat": self.legend or "__auto",
                "range": not self.instant,
                "instant": self.instant,
                "refId": ref_id,
            }
            if self.table:
                target["format"] = "table"
            return target
        if self.lang == "logql":
            return {
                "datasource": LOKI,
                "editorMode": "code",
                "expr": self.expr,
                "legendFormat": self.legend,
                "queryType": "range",
                "refId": ref_id,
            }
        return {
            "datasource": POSTGRES,
            "editorMode": "code",
            "format": "table" if self.table else "time_series",
            "rawQuery": True,
            "rawSql": self.expr,
            "refId": ref_id,
        }


def prom(expr: str, legend: str = "", instant: bool = False, table: bool = False) -> Query:
    return Query(" ".join(expr.split()), "promql", legend, instant, table)


def logql(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), "logql", legend)


def sql(expr: str, table: bool = True) -> Query:
    return Query(" ".join(expr.split()), "sql", table=table)


# --------------------------------------------------------------------------- panels

PanelType = Literal["timeseries", "stat", "table", "logs", "barchart", "bargauge"]


@dataclass
class Panel:
    title: str
    type: PanelType
    queries: list[Query]
    w: int = 12
    h: int = 8
    unit: str = "short"
    description: str = ""
    stacked: bool = False
    overrides: list[Json] = field(default_factory=list)
    transformations: list[Json] = field(default_factory=list)
    options: Json = field(default_factory=dict)
    thresholds: list[tuple[float | None, str]] = field(default_factory=lambda: [(None, "green")])
    mappings: list[Json] = field(default_factory=list)

    @property
    def datasource(self) -> Json:
        return {"promql": PROMETHEUS, "logql": LOKI, "sql": POSTGRES}[self.queries[0].lang]

    def to_json(self, panel_id: int, x: int, y: int) -> Json:
        defaults: Json = {
            "unit": self.unit,
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": c, "value": v} for v, c in self.thresholds],
            },
            "mappings": self.mappings,
        }
        if self.type == "timeseries":
            defaults["custom"] = {
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": 20 if self.stacked else 5,
                "showPoints": "never",
                "stacking": {"mode": "normal" if self.stacked else "none", "group": "A"},
            }
            defaults["color"] = {"mode": "palette-classic"}
        elif self.type == "stat":
            defaults["color"] = {"mode": "thresholds"}
        options = {**_default_options(self.type), **self.options}
        return {
            "id": panel_id,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "datasource": self.datasource,
            "gridPos": {"h": self.h, "w": self.w, "x": x, "y": y},
            "targets": [q.to_json(chr(ord("A") + i)) for i, q in enumerate(self.queries)],
            "fieldConfig": {"defaults": defaults, "overrides": self.overrides},
            "options": options,
            "transformations": self.transformations,
        }


def _default_options(kind: PanelType) -> Json:
    if kind == "timeseries":
        return {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if kind == "stat":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value_and_name",
            "justifyMode": "auto",
            "orientation": "auto",
        }
    if kind == "table":
        return {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    if kind == "logs":
        return {
            "showTime": True,
            "wrapLogMessage": True,
            "enableLogDetails": True,
            "prettifyLogMessage": False,
            "sortOrder": "Descending",
            "dedupStrategy": "none",
        }
    return {}


@dataclass(frozen=True)
class Row:
    title: str


# --------------------------------------------------------------------------- variables


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    kind: Literal["query", "custom", "textbox"]
    query: str = ""
    lang: Lang = "promql"
    multi: bool = True
    default: str = ""
    description: str = ""

    def to_json(self, all_value: str = ".*") -> Json:
        base: Json = {
            "name": self.name,
            "label": self.label,
            "type": self.kind,
            "description": self.description,
            "hide": 0,
        }
        if self.kind == "textbox":
            base["query"] = self.default
            base["current"] = {"text": self.default, "value": self.default}
            return base
        if self.multi:
            current: Json = {"text": ["All"], "value": ["$__all"]}
        else:
            current = {}
        base.update(
            multi=self.multi,
            includeAll=self.multi,
            allValue=all_value if self.multi else None,
            current=current,
            refresh=2 if self.kind == "query" else 0,
            sort=1,
            options=[],
        )
        if self.kind == "custom":
            base["query"] = self.query
            # Grafana's custom-variable syntax: "text : value" shows people one name and
            # puts another in the query (Loki's level values behind the familiar names).
            base["options"] = [
                {"text": text, "value": value or text, "selected": False}
                for text, _, value in (o.partition(" : ") for o in self.query.split(","))
            ]
            return base
        ds = {"promql": PROMETHEUS, "logql": LOKI, "sql": POSTGRES}[self.lang]
        base["datasource"] = ds
        if self.lang == "promql":
            base["definition"] = self.query
            base["query"] = {
                "qryType": 1,
                "query": self.query,
                "refId": "PrometheusVariableQueryEditor-VariableQuery",
            }
        elif self.lang == "logql":
            label = self.query.removeprefix("label_values(").removesuffix(")")
            base["definition"] = self.query
            base["query"] = {
                "label": label,
                "stream": "",
                "type": 1,
                "refId": "LokiVariableQueryEditor-VariableQuery",
            }
        else:
            base["definition"] = self.query
            base["query"] = self.query
        return base


# --------------------------------------------------------------------------- dashboard


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    items: list[Panel | Row]
    variables: list[Variable] = field(default_factory=list)
    time_from: str = "now-6h"
    refresh: str = "30s"
    #: What a multi-value variable's "All" expands to. LogQL needs ".+": Loki refuses a
    #: stream selector whose every matcher accepts the empty string (service_name=~".*").
    all_value: str = ".*"

    def panels(self) -> list[Panel]:
        return [p for p in self.items if isinstance(p, Panel)]

    def to_json(self) -> Json:
        out: list[Json] = []
        x = y = row_h = 0
        panel_id = 1
        for item in self.items:
            if isinstance(item, Row):
                if x:
                    y += row_h
                    x = row_h = 0
                out.append(
                    {
                        "id": panel_id,
                        "type": "row",
                        "title": item.title,
                        "collapsed": False,
                        "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                        "panels": [],
                    }
                )
                panel_id += 1
                y += 1
                continue
            if x + item.w > 24:
                y += row_h
                x = row_h = 0
            out.append(item.to_json(panel_id, x, y))
            panel_id += 1
            x += item.w
            row_h = max(row_h, item.h)
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": TAGS,
            "timezone": "browser",
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "refresh": self.refresh,
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {},
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "annotations": {
                "list": [
                    {
                        "builtIn": 1,
                        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                        "enable": True,
                        "hide": True,
                        "iconColor": "rgba(0, 211, 255, 1)",
                        "name": "Annotations & Alerts",
                        "type": "dashboard",
                    }
                ]
            },
            "links": [
                {
                    "type": "dashboards",
                    "tags": TAGS,
                    "asDropdown": True,
                    "title": "otel-assist",
                    "includeVars": False,
                    "keepTime": True,
                }
            ],
            "templating": {"list": [v.to_json(self.all_value) for v in self.variables]},
            "panels": out,
        }


# --------------------------------------------------------------------------- helpers

RI = "$__rate_interval"
SERVICE = Variable(
    "service",
    "Service",
    "query",
    "label_values(target_info, job)",
    description="Services (Prometheus job = OpenTelemetry service.name).",
)


def quantiles(metric: str, by: str, selector: str, qs: tuple[float, ...]) -> list[Query]:
    return [
        prom(
            f"histogram_quantile({q}, sum by ({by}, le) "
            f"(rate({metric}_bucket{{{selector}}}[{RI}])))",
            legend=f"p{round(q * 100)} {{{{{by.split(',')[0].strip()}}}}}",
        )
        for q in qs
    ]


def link_override(field_name: str, title: str, url: str) -> Json:
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [{"id": "links", "value": [{"title": title, "url": url}]}],
    }


STATUS_COLOURS = {
    "completed": "green",
    "failed": "red",
    "timed_out": "orange",
    "missed": "yellow",
    "running": "blue",
    "scheduled": "text",
    "cancelled": "purple",
}


def status_colours(field_name: str) -> Json:
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [
            {"id": "custom.cellOptions", "value": {"type": "color-background"}},
            {
                "id": "mappings",
                "value": [
                    {
                        "type": "value",
                        "options": {
                            status: {"color": colour, "index": i}
                            for i, (status, colour) in enumerate(STATUS_COLOURS.items())
                        },
                    }
                ],
            },
        ],
    }


def wide_text(field_name: str, width: int) -> Json:
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [
            {"id": "custom.width", "value": width},
            {"id": "custom.inspect", "value": True},
        ],
    }


LOGS_LINK = (
    "/d/otel-assist-logs/otel-assist-logs?var-correlation_id=${__value.raw}&${__url_time_range}"
)


# --------------------------------------------------------------------------- Overview

OVERVIEW = Dashboard(
    uid="otel-assist-overview",
    title="otel-assist: Overview",
    description="Is every service up, how busy and how healthy is it, what does the LLM cost.",
    variables=[SERVICE],
    items=[
        Row("Services"),
        Panel(
            "Live processes per service",
            "stat",
            [
                prom(
                    'count by (job) (last_over_time(target_info{job=~"$service"}[2m]))',
                    legend="{{job}}",
                    instant=True,
                )
            ],
            w=16,
            h=5,
            description="Processes that reported within the last 2 minutes (target_info). "
            "A service missing here for 3 minutes raises ServiceDown.",
            thresholds=[(None, "red"), (1, "green")],
        ),
        Panel(
            "Firing alerts",
            "stat",
            [
                prom(
                    'count(ALERTS{alertstate="firing"}) or vector(0)', legend="firing", instant=True
                )
            ],
            w=8,
            h=5,
            thresholds=[(None, "green"), (1, "red")],
        ),
        Panel(
            "Alerts firing now",
            "table",
            [
                prom(
                    'max by (alertname, service, severity) (ALERTS{alertstate="firing"})',
                    instant=True,
                    table=True,
                )
            ],
            w=24,
            h=6,
            transformations=[
                {"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}
            ],
        ),
        Row("HTTP"),
        Panel(
            "Request rate",
            "timeseries",
            [
                prom(
                    f"sum by (job) "
                    f'(rate(http_server_request_duration_seconds_count{{job=~"$service"}}[{RI}]))',
                    legend="{{job}}",
                )
            ],
            unit="reqps",
        ),
        Panel(
            "5xx error rate",
            "timeseries",
            [
                prom(
                    "(sum by (job) (rate(http_server_request_duration_seconds_count"
                    f'{{job=~"$service", http_response_status_code=~"5.."}}[{RI}]))'
                    " or 0 * sum by (job) (rate(http_server_request_duration_seconds_count"
                    f'{{job=~"$service"}}[{RI}])))'
                    f" / sum by (job) "
                    f'(rate(http_server_request_duration_seconds_count{{job=~"$service"}}[{RI}]))',
                    legend="{{job}}",
                )
            ],
            unit="percentunit",
            description="Share of requests answered 5xx (HighHttp5xxRate fires above 5% for 5m).",
        ),
        Panel(
            "Latency p50 / p95 / p99",
            "timeseries",
            quantiles(
                "http_server_request_duration_seconds", "job", 'job=~"$service"', (0.5, 0.95, 0.99)
            ),
            w=24,
            unit="s",
        ),
        Panel(
            "Slowest routes (p95)",
            "table",
            [
                prom(
                    "topk(10, histogram_quantile(0.95, sum by (job, http_route, le) "
                    f'(rate(http_server_request_duration_seconds_bucket{{job=~"$service"}}[{RI}]))))',
                    instant=True,
                    table=True,
                )
            ],
            unit="s",
            transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True}}}],
        ),
        Panel(
            "Error log records",
            "timeseries",
            [
                prom(
                    f'sum by (job) (rate(log_records_total{{job=~"$service", '
                    f'level=~"error|critical"}}[{RI}]))',
                    legend="{{job}}",
                )
            ],
            unit="cps",
            description="Log records at level error or critical (HighErrorLogRate fires above "
            "10% of all records).",
        ),
        Row("Assistant"),
        Panel(
            "LLM calls",
            "timeseries",
            [
                prom(
                    f'sum by (model, status) (rate(llm_requests_total{{job=~"$service"}}[{RI}]))',
                    legend="{{model}} {{status}}",
                )
            ],
            unit="reqps",
            stacked=True,
        ),
        Panel(
            "LLM errors (in range)",
            "stat",
            [
                prom(
                    'sum by (model) (increase(llm_requests_total{job=~"$service", '
                    'status="error"}[$__range]))',
                    legend="{{model}}",
                    instant=True,
                )
            ],
            thresholds=[(None, "green"), (1, "orange"), (10, "red")],
        ),
        Panel(
            "LLM call duration p95",
            "timeseries",
            quantiles(
                "gen_ai_client_operation_duration_seconds",
                "gen_ai_request_model",
                'job=~"$service"',
                (0.5, 0.95),
            ),
            unit="s",
        ),
        Panel(
            "Tokens per minute",
            "timeseries",
            [
                prom(
                    "sum by (gen_ai_request_model, gen_ai_token_type) "
                    f'(rate(gen_ai_client_token_usage_sum{{job=~"$service"}}[{RI}])) * 60',
                    legend="{{gen_ai_request_model}} {{gen_ai_token_type}}",
                )
            ],
            stacked=True,
        ),
        Panel(
            "Tool calls",
            "timeseries",
            [
                prom(
                    f'sum by (tool_name, status) (rate(tool_calls_total{{job=~"$service"}}[{RI}]))',
                    legend="{{tool_name}} {{status}}",
                )
            ],
            unit="ops",
        ),
        Panel(
            "Messages processed",
            "timeseries",
            [
                prom(
                    f"sum by (source, status) "
                    f'(rate(messages_processed_total{{job=~"$service"}}[{RI}]))',
                    legend="{{source}} {{status}}",
                )
            ],
            unit="ops",
        ),
        Panel(
            "RAG search p50 / p95",
            "timeseries",
            quantiles("rag_search_duration_seconds", "status", 'job=~"$service"', (0.5, 0.95)),
            unit="s",
        ),
        Panel(
            "Redis command p95",
            "timeseries",
            [
                prom(
                    "histogram_quantile(0.95, sum by (job, db_operation_name, le) "
                    "(rate(db_client_operation_duration_seconds_bucket"
                    f'{{job=~"$service"}}[{RI}])))',
                    legend="{{job}} {{db_operation_name}}",
                )
            ],
            unit="s",
        ),
        Row("Telemetry pipeline"),
        Panel(
            "History events shipped to rest_service",
            "timeseries",
            [
                prom(
                    "sum by (job, kind, outcome) "
                    f'(rate(history_events_total{{job=~"$service"}}[{RI}]))',
                    legend="{{job}} {{kind}} {{outcome}}",
                )
            ],
            unit="ops",
            description="sent, retried, spooled to disk, or dropped (HistoryEventsDropped).",
        ),
        Panel(
            "History events waiting",
            "timeseries",
            [
                prom(
                    'sum by (job, kind) (history_buffered_events{job=~"$service"})',
                    legend="{{job}} {{kind}}",
                )
            ],
        ),
        Panel(
            "Dropped telemetry (in range)",
            "stat",
            [
                prom(
                    "sum by (job, reason) "
                    '(increase(otel_assist_log_records_dropped_total{job=~"$service"}[$__range]))',
                    legend="logs {{job}} {{reason}}",
                    instant=True,
                ),
                prom(
                    'sum by (job, kind) (increase(history_events_total{job=~"$service", '
                    'outcome="dropped"}[$__range]))',
                    legend="history {{job}} {{kind}}",
                    instant=True,
                ),
            ],
            w=24,
            h=5,
            thresholds=[(None, "green"), (1, "orange")],
        ),
    ],
)

# --------------------------------------------------------------------------- Logs

LOG_SELECTOR = '{service_name=~"$service", deployment_environment_name=~"$environment"}'
LOG_FILTERS = (
    '| detected_level=~"$level" | event_type=~"$event_type"'
    ' | correlation_id=~"$correlation_id" | user_id=~"$user_id"'
)

LOGS = Dashboard(
    uid="otel-assist-logs",
    title="otel-assist: Logs",
    description="Every service's log lines from Loki, filtered by service, level, event type, "
    "correlation id and user id.",
    time_from="now-1h",
    all_value=".+",  # Loki refuses {service_name=~".*", ...}: see Dashboard.all_value
    variables=[
        Variable("service", "Service", "query", "label_values(service_name)", lang="logql"),
        Variable(
            "environment",
            "Environment",
            "query",
            "label_values(deployment_environment_name)",
            lang="logql",
        ),
        # Loki's detected_level values (warn, fatal) behind the names people know.
        Variable("level", "Level", "custom", "debug,info,warning : warn,error,critical : fatal"),
        Variable(
            "event_type",
            "Event type",
            "custom",
            ",".join(LogEventType),  # the vocabulary, from otel_assist.event_types
        ),
        Variable(
            "correlation_id",
            "correlation_id",
            "textbox",
            default=".*",
            description="Exact correlation id (a regex; .* = any).",
        ),
        Variable(
            "user_id",
            "user_id",
            "textbox",
            default=".*",
            description="Exact user id (a regex; .* = any).",
        ),
        Variable(
            "search",
            "Text",
            "textbox",
            default="",
            description="Case-insensitive regex on the log line.",
        ),
    ],
    items=[
        Panel(
            "Log volume by level",
            "timeseries",
            [
                logql(
                    f"sum by (detected_level) (count_over_time({LOG_SELECTOR} {LOG_FILTERS} "
                    f'|~ "(?i)$search" [$__auto]))',
                    legend="{{detected_level}}",
                )
            ],
            stacked=True,
        ),
        Panel(
            "Errors by service",
            "timeseries",
            [
                logql(
                    f"sum by (service_name) (count_over_time({LOG_SELECTOR} | "
                    f'detected_level=~"error|fatal" [$__auto]))',
                    legend="{{service_name}}",
                )
            ],
            stacked=True,
        ),
        Panel(
            "Log lines",
            "logs",
            [logql(f'{LOG_SELECTOR} {LOG_FILTERS} |~ "(?i)$search"')],
            w=24,
            h=16,
            description="Open a line's details: correlation_id links to every line of that "
            "request (Loki derived field).",
        ),
        Panel(
            "Error lines with their correlation id",
            "table",
            [
                logql(
                    f'{LOG_SELECTOR} | detected_level=~"error|fatal" | '
                    f'event_type=~"$event_type" | user_id=~"$user_id"'
                )
            ],
            w=24,
            h=10,
            description="Click a correlation_id to see all lines of that request.",
            transformations=[
                {"id": "extractFields", "options": {"source": "labels", "replace": False}},
                {
                    "id": "organize",
                    "options": {
                        "indexByName": {
                            "Time": 0,
                            "service_name": 1,
                            "event_type": 2,
                            "correlation_id": 3,
                            "user_id": 4,
                            "Line": 5,
                        },
                        "excludeByName": {
                            "labels": True,
                            "id": True,
                            "tsNs": True,
                            "labelTypes": True,
                        },
                    },
                },
            ],
            overrides=[link_override("correlation_id", "All lines of this request", LOGS_LINK)],
        ),
    ],
)

# --------------------------------------------------------------------------- Cron jobs

JOB_TYPE = Variable("job_type", "Job type", "query", "label_values(cron_jobs_total, job_type)")

CRON = Dashboard(
    uid="otel-assist-cron",
    title="otel-assist: Cron jobs",
    description="Runs, failures, durations and stuck jobs of the APScheduler cron service, "
    "with the execution history from Postgres.",
    variables=[JOB_TYPE],
    items=[
        Row("Runs"),
        Panel(
            "Runs by status",
            "timeseries",
            [
                prom(
                    f"sum by (job_type, status) "
                    f'(rate(cron_jobs_total{{job_type=~"$job_type"}}[{RI}])) * 60',
                    legend="{{job_type}} {{status}}",
                )
            ],
            unit="short",
            description="Runs per minute by outcome.",
            stacked=True,
        ),
        Panel(
            "Failures by job type (in range)",
            "bargauge",
            [
                prom(
                    'sum by (job_type) (increase(cron_jobs_total{job_type=~"$job_type", '
                    'status="failed"}[$__range]))',
                    legend="{{job_type}}",
                    instant=True,
                )
            ],
            thresholds=[(None, "green"), (1, "orange"), (5, "red")],
            options={
                "orientation": "horizontal",
                "displayMode": "basic",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            },
        ),
        Panel(
            "Run duration p50 / p95",
            "timeseries",
            quantiles(
                "cron_job_duration_seconds", "job_type", 'job_type=~"$job_type"', (0.5, 0.95)
            ),
            unit="s",
        ),
        Panel(
            "Missed and timed-out runs (in range)",
            "bargauge",
            [
                prom(
                    "sum by (job_type, status) "
                    '(increase(cron_jobs_total{job_type=~"$job_type", '
                    'status=~"missed|timed_out"}[$__range]))',
                    legend="{{job_type}} {{status}}",
                    instant=True,
                )
            ],
            thresholds=[(None, "green"), (1, "orange")],
            options={
                "orientation": "horizontal",
                "displayMode": "basic",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            },
        ),
        Row("Now"),
        Panel(
            "Scheduled jobs",
            "stat",
            [
                prom(
                    'sum by (job_type) (cron_scheduled_jobs{job_type=~"$job_type"})',
                    legend="{{job_type}}",
                    instant=True,
                )
            ],
            w=8,
            h=5,
        ),
        Panel(
            "Stuck (over max runtime)",
            "stat",
            [
                prom(
                    'max by (job_type) (cron_jobs_running_over_max_runtime{job_type=~"$job_type"})',
                    legend="{{job_type}}",
                    instant=True,
                )
            ],
            w=8,
            h=5,
            thresholds=[(None, "green"), (1, "red")],
        ),
        Panel(
            "Failures in a row",
            "stat",
            [
                prom(
                    'max by (job_type) (cron_job_consecutive_failures{job_type=~"$job_type"})',
                    legend="{{job_type}}",
                    instant=True,
                )
            ],
            w=8,
            h=5,
            thresholds=[(None, "green"), (1, "orange"), (3, "red")],
        ),
        Row("History (Postgres)"),
        Panel(
            "Runs and failures per job type",
            "table",
            [
                sql("""
                SELECT job_type,
                       count(*) AS runs,
                       count(*) FILTER (WHERE status = 'failed') AS failed,
                       count(*) FILTER (WHERE status IN ('missed', 'timed_out'))
                         AS missed_or_timed_out,
                       round(avg(duration_ms)) AS avg_duration_ms,
                       max(created_at) AS last_run
                FROM job_executions
                WHERE $__timeFilter(created_at) AND job_type ~ '^${job_type:regex}$'
                GROUP BY job_type
                ORDER BY failed DESC, runs DESC
            """)
            ],
            w=24,
            h=7,
        ),
        Panel(
            "Recent executions",
            "table",
            [
                sql("""
                SELECT created_at AS "time", job_type, job_name, status, duration_ms,
                       started_at, finished_at, user_id, correlation_id, error
                FROM job_executions
                WHERE $__timeFilter(created_at) AND job_type ~ '^${job_type:regex}$'
                ORDER BY created_at DESC
                LIMIT 200
            """)
            ],
            w=24,
            h=12,
            description="Status is coloured; the error column holds the exception text "
            "(inspect a cell for the whole text).",
            overrides=[
                status_colours("status"),
                wide_text("error", 400),
                link_override("correlation_id", "Logs of this run", LOGS_LINK),
            ],
        ),
    ],
)

# --------------------------------------------------------------------------- Queues

QUEUE = Variable("queue", "Queue", "query", "label_values(queue_messages_total, queue_name)")

QUEUES = Dashboard(
    uid="otel-assist-queues",
    title="otel-assist: Queues",
    description="Redis list queues: backlog, age, throughput, wait and processing time, and "
    "the message log from Postgres.",
    variables=[
        QUEUE,
        Variable(
            "correlation_id",
            "correlation_id",
            "textbox",
            default="",
            description="Show only the messages of this correlation id (empty = all).",
        ),
    ],
    items=[
        Panel(
            "Queue length",
            "timeseries",
            [
                prom(
                    'max by (queue_name) (queue_length{queue_name=~"$queue"})',
                    legend="{{queue_name}}",
                )
            ],
            description="QueueBacklog fires above 100 for 10m.",
        ),
        Panel(
            "Oldest message age",
            "timeseries",
            [
                prom(
                    'max by (queue_name) (queue_oldest_message_age_seconds{queue_name=~"$queue"})',
                    legend="{{queue_name}}",
                )
            ],
            unit="s",
            description="QueueOldestMessageTooOld fires above 5 minutes for 5m.",
        ),
        Panel(
            "Push / pop rate",
            "timeseries",
            [
                prom(
                    f"sum by (queue_name, direction) "
                    f'(rate(queue_messages_total{{queue_name=~"$queue"}}[{RI}]))',
                    legend="{{queue_name}} {{direction}}",
                )
            ],
            unit="ops",
        ),
        Panel(
            "Wait time p50 / p95 (enqueue to dequeue)",
            "timeseries",
            quantiles(
                "queue_wait_duration_seconds", "queue_name", 'queue_name=~"$queue"', (0.5, 0.95)
            ),
            unit="s",
        ),
        Panel(
            "Processing time p95 by status",
            "timeseries",
            [
                prom(
                    "histogram_quantile(0.95, sum by (queue_name, status, le) "
                    f'(rate(queue_processing_duration_seconds_bucket{{queue_name=~"$queue"}}[{RI}])))',
                    legend="{{queue_name}} {{status}}",
                )
            ],
            unit="s",
        ),
        Panel(
            "Invalid messages (in range)",
            "bargauge",
            [
                prom(
                    "sum by (queue_name, reason) "
                    '(increase(queue_invalid_messages_total{queue_name=~"$queue"}[$__range]))',
                    legend="{{queue_name}} {{reason}}",
                    instant=True,
                )
            ],
            thresholds=[(None, "green"), (1, "orange")],
            options={
                "orientation": "horizontal",
                "displayMode": "basic",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            },
        ),
        Panel(
            "Messages by type (Postgres)",
            "table",
            [
                sql("""
                SELECT queue_name, direction, message_type, count(*) AS messages,
                       max(created_at) AS last_seen
                FROM queue_message_logs
                WHERE $__timeFilter(created_at) AND queue_name ~ '^${queue:regex}$'
                GROUP BY queue_name, direction, message_type
                ORDER BY messages DESC
            """)
            ],
            w=24,
            h=7,
        ),
        Panel(
            "Recent messages (Postgres)",
            "table",
            [
                sql("""
                SELECT created_at AS "time", queue_name, direction, message_type, source,
                       user_id, correlation_id, left(payload, 300) AS payload
                FROM queue_message_logs
                WHERE $__timeFilter(created_at) AND queue_name ~ '^${queue:regex}$'
                  AND (${correlation_id:sqlstring} = ''
                       OR correlation_id = ${correlation_id:sqlstring})
                ORDER BY created_at DESC
                LIMIT 200
            """)
            ],
            w=24,
            h=12,
            overrides=[
                wide_text("payload", 500),
                link_override("correlation_id", "Logs of this message", LOGS_LINK),
            ],
        ),
    ],
)

# --------------------------------------------------------------------------- User memory

USER_MEMORY = Dashboard(
    uid="otel-assist-user-memory",
    title="otel-assist: User memory",
    description="What the assistant remembers about a user, and memory operation rates.",
    time_from="now-7d",
    variables=[
        Variable(
            "user_id",
            "User",
            "query",
            "SELECT DISTINCT user_id FROM user_memories ORDER BY user_id",
            lang="sql",
            multi=False,
        ),
    ],
    items=[
        Panel(
            "Facts of this user",
            "stat",
            [
                sql(
                    "SELECT count(*) AS facts FROM user_memories WHERE user_id = "
                    "${user_id:sqlstring}::bigint"
                )
            ],
            w=6,
            h=5,
        ),
        Panel(
            "Memory operations",
            "timeseries",
            [
                prom(
                    f"sum by (operation, status) (rate(memory_operations_total[{RI}]))",
                    legend="{{operation}} {{status}}",
                )
            ],
            w=18,
            h=5,
            unit="ops",
        ),
        Panel(
            "Facts (newest first)",
            "table",
            [
                sql("""
                SELECT updated_at, created_at, source, content
                FROM user_memories
                WHERE user_id = ${user_id:sqlstring}::bigint
                ORDER BY updated_at DESC
                LIMIT 500
            """)
            ],
            w=24,
            h=12,
            overrides=[wide_text("content", 700)],
        ),
        Panel(
            "This user's recent queue messages",
            "table",
            [
                sql("""
                SELECT created_at AS "time", queue_name, direction, message_type, correlation_id
                FROM queue_message_logs
                WHERE $__timeFilter(created_at) AND user_id = ${user_id:sqlstring}::bigint
                ORDER BY created_at DESC
                LIMIT 100
            """)
            ],
            overrides=[link_override("correlation_id", "Logs of this message", LOGS_LINK)],
        ),
        Panel(
            "Users with the most facts",
            "table",
            [
                sql("""
                SELECT user_id, count(*) AS facts, max(updated_at) AS last_update
                FROM user_memories
                GROUP BY user_id
                ORDER BY facts DESC
                LIMIT 50
            """)
            ],
        ),
    ],
)

DASHBOARDS: tuple[Dashboard, ...] = (OVERVIEW, LOGS, CRON, QUEUES, USER_MEMORY)


def render(dashboard: Dashboard) -> str:
    return json.dumps(dashboard.to_json(), indent=2, ensure_ascii=False) + "\n"


def file_name(dashboard: Dashboard) -> str:
    return dashboard.uid.removeprefix("otel-assist-") + ".json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a file would change")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    stale = []
    args.out.mkdir(parents=True, exist_ok=True)
    expected = {file_name(d): render(d) for d in DASHBOARDS}
    for name, text in expected.items():
        path = args.out / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text)
    extra = sorted(p.name for p in args.out.glob("*.json") if p.name not in expected)
    if args.check:
        for name in stale + extra:
            print(f"stale: {args.out / name} (run python monitoring/grafana/generate.py)")
        return 1 if stale or extra else 0
    for name in extra:
        (args.out / name).unlink()
    print(f"wrote {len(stale)} of {len(expected)} dashboards to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
