"""collector/config.yaml on the real Collector binary, end to end.

Real programs: the Collector built from collector/manifest.yaml, the Debian Prometheus
(remote-write target and scraper of the Collector's own metrics), instrumented service
processes (FastAPI + otel_assist over real HTTP). The only stand-in is Loki's OTLP ingest
endpoint (``LokiStandIn``), because Loki cannot run here.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.collector.conftest import CONFIG, Stack
from tests.polling import poll

# docs/telemetry-contract.md: the only resource attributes a service sends.
CONTRACT_RESOURCE = {
    "service.name",
    "service.instance.id",
    "deployment.environment.name",
    "service.version",
}

# Metric name in Prometheus -> label names it must carry (contract table), for the metrics
# service_app produces per request.
CONTRACT_METRICS = {
    "http_server_request_duration_seconds_bucket": {
        "http_request_method",
        "http_route",
        "http_response_status_code",
        "le",
    },
    "http_server_request_duration_seconds_count": {"http_request_method", "http_route"},
    "http_server_active_requests": {"http_request_method"},
    "log_records_total": {"level"},
    "messages_processed_total": {"source", "status"},
    "queue_messages_total": {"queue_name", "direction"},
    "queue_length": {"queue_name"},
    "llm_requests_total": {"model", "status"},
    "gen_ai_client_operation_duration_seconds_bucket": {
        "gen_ai_request_model",
        "gen_ai_operation_name",
    },
    "gen_ai_client_token_usage_bucket": {
        "gen_ai_request_model",
        "gen_ai_operation_name",
        "gen_ai_token_type",
    },
}
NEVER_LABELS = {"user_id", "correlation_id", "seq", "digest"}


@pytest.mark.timeout(1500)  # may include the first (cold) Collector build
def test_collector_validate_accepts_the_config(collector_binary: Path, tmp_path: Path) -> None:
    ok = subprocess.run(
        [str(collector_binary), "validate", f"--config={CONFIG}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    # The same check rejects a broken pipeline (so the assertion above can fail).
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        CONFIG.read_text().replace("exporters: [otlp_http/loki]", "exporters: [loki]")
    )
    bad = subprocess.run(
        [str(collector_binary), "validate", f"--config={broken}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "loki" in bad.stderr


def test_pipelines_are_in_the_documented_order() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"logs", "metrics"}  # tracing is off by design
    for name, pipeline in pipelines.items():
        assert pipeline["processors"][0] == "memory_limiter", name
    # Logs are batched inside the exporter, after the persistent queue, never before it.
    assert "batch" not in pipelines["logs"]["processors"]
    loki = config["exporters"]["otlp_http/loki"]
    assert loki["sending_queue"]["storage"] == "file_storage/queue"
    assert loki["retry_on_failure"]["max_elapsed_time"] in ("0", "0s", 0)
    # Nothing may copy record attributes into the resource (they would become Loki labels).
    assert not [
        p
        for p in config["processors"]
        if p.split("/")[0] in {"resource", "transform", "attributes", "groupbyattrs"}
    ]


def test_metrics_and_logs_reach_prometheus_and_loki(stack: Stack) -> None:
    checkout_1 = stack.add_service("checkout")
    checkout_2 = stack.add_service("checkout")
    assistant = stack.add_service("assistant")
    plan = [(checkout_1, 7), (checkout_2, 5), (assistant, 4)]
    expected: dict[int, tuple[str, str, int]] = {}
    seq = 0
    for svc, n in plan:
        for _ in range(n):
            cid = f"cid-{seq:04d}"
            body = svc.work(seq, user_id=1000 + seq, correlation_id=cid)
            assert body["correlation_id"] == cid
            expected[seq] = (svc.service, cid, 1000 + seq)
            seq += 1

    # ---- logs at the Loki stand-in
    poll(
        lambda: set(stack.loki.seqs()) >= set(expected),
        30,
        "every message_processed record at the Loki stand-in",
    )
    records = [
        r for r in stack.loki.snapshot() if r.attributes.get("event_type") == "message_processed"
    ]
    instance_of: dict[int, str] = {}
    for r in records:
        service, cid, user_id = expected[int(r.attributes["seq"])]
        assert r.resource["service.name"] == service
        assert r.resource["deployment.environment.name"] == "test"
        assert set(r.resource) <= CONTRACT_RESOURCE, set(r.resource) - CONTRACT_RESOURCE
        assert r.attributes["correlation_id"] == cid
        assert int(r.attributes["user_id"]) == user_id
        assert r.body == "message processed"
        assert r.severity_text.lower() == "info"
        # record attributes stayed record attributes
        assert not {"event_type", "correlation_id", "user_id"} & set(r.resource)
        instance_of[int(r.attributes["seq"])] = r.resource["service.instance.id"]
    # every resource attribute of every record (access logs too) is in the contract
    for r in stack.loki.snapshot():
        assert set(r.resource) <= CONTRACT_RESOURCE, r.resource
    log_instances = {
        name: {instance_of[s] for s, (svc, _, _) in expected.items() if svc == name}
        for name in ("checkout", "assistant")
    }
    assert len(log_instances["checkout"]) == 2 and len(log_instances["assistant"]) == 1

    # ---- metrics in Prometheus: job = service, instance = service.instance.id
    def processed_by_instance() -> dict[tuple[str, str], float] | None:
        rows = stack.query("sum by (job, instance) (messages_processed_total)")
        got = {(r["metric"]["job"], r["metric"]["instance"]): float(r["value"][1]) for r in rows}
        return got if sum(got.values()) == len(expected) else None

    by_instance = poll(processed_by_instance, 30, "messages_processed_total in Prometheus")
    per_job = Counter()
    for (job, _), value in by_instance.items():
        per_job[job] += value
    assert per_job == {"checkout": 12, "assistant": 4}
    checkout_values = sorted(v for (job, _), v in by_instance.items() if job == "checkout")
    assert checkout_values == [5, 7]  # two worker processes, two instances, correct sum
    assert {i for (job, i) in by_instance if job == "checkout"} == log_instances["checkout"]
    assert {i for (job, i) in by_instance if job == "assistant"} == log_instances["assistant"]

    for metric, labels in CONTRACT_METRICS.items():
        rows = poll(lambda m=metric: stack.query(f'{m}{{job="checkout"}}'), 20, metric)
        for row in rows:
            names = set(row["metric"]) - {"__name__", "job", "instance"}
            assert labels <= names, (metric, names)
            assert not NEVER_LABELS & names, (metric, names)
            assert not {n for n in names if n.startswith("service_")}, names

    # Every request counted once (no second, same-named series from another
    # instrumentation), per route template, summed over the two checkout processes.
    def requests_by_route() -> dict[str, float] | None:
        rows = stack.query(
            'sum by (http_route) (http_server_request_duration_seconds_count{job="checkout"})'
        )
        got = {r["metric"]["http_route"]: float(r["value"][1]) for r in rows}
        return got if sum(got.values()) >= 12 else None

    assert poll(requests_by_route, 20, "12 checkout requests counted") == {"/work/{seq}": 12}

    # one target_info per process, carrying the environment
    # (the Collector's own target_info, scraped from :8888, has job="otel-collector")
    info = stack.query('target_info{job!="otel-collector"}')
    assert Counter(r["metric"]["job"] for r in info) == {"checkout": 2, "assistant": 1}
    assert {r["metric"].get("deployment_environment_name") for r in info} == {"test"}

    # ---- the Collector's own metrics, scraped by Prometheus
    def collector_counts() -> dict[str, float] | None:
        names = {
            "accepted": "otelcol_receiver_accepted_log_records_total",
            "sent_logs": "otelcol_exporter_sent_log_records_total",
            "sent_points": "otelcol_exporter_sent_metric_points_total",
            "queue": "otelcol_exporter_queue_size",
            "capacity": "otelcol_exporter_queue_capacity",
        }
        got = {}
        for key, name in names.items():
            rows = stack.query(f'sum({name}{{job="otel-collector"}})')
            if not rows:
                return None
            got[key] = float(rows[0]["value"][1])
        return got if got["sent_logs"] >= len(expected) else None

    own = poll(collector_counts, 30, "the Collector's own metrics in Prometheus")
    assert own["accepted"] >= len(expected) and own["sent_points"] > 0 and own["capacity"] > 0

    # ---- a service that disappears: its target_info stops getting samples (what the
    # ServiceDown rule keys on), while the others keep reporting every second.
    assistant.process.stop()
    poll(
        lambda: not stack.query('count_over_time(target_info{job="assistant"}[3s])'),
        30,
        "assistant's target_info to go stale",
    )
    assert len(stack.query('count_over_time(target_info{job="checkout"}[3s])')) == 2


def test_loki_rejections_are_retried_or_dropped_and_counted(stack: Stack) -> None:
    """429/503 from Loki are retried (nothing lost); a 400 (invalid push) is dropped, counted
    in otelcol_exporter_send_failed_log_records_total, and does not block what follows."""
    svc = stack.add_service("checkout")

    def send(seqs: range) -> None:
        for seq in seqs:
            svc.work(seq, user_id=seq, correlation_id=f"rej-{seq}")

    # Rate limited for 3 s: the Collector retries, every record arrives.
    stack.loki.reject(429, seconds=3)
    send(range(0, 10))
    poll(lambda: set(stack.loki.seqs()) >= set(range(10)), 30, "records after 429s")
    assert stack.loki.rejected >= 1

    # One push rejected as invalid: dropped (not retried forever), counted, queue moves on.
    rejected_before = stack.loki.rejected
    stack.loki.reject(400, requests=1)
    send(range(10, 20))
    poll(lambda: stack.loki.rejected > rejected_before, 20, "the 400 to be answered")
    failed = poll(
        lambda: stack.query(
            'sum(otelcol_exporter_send_failed_log_records_total{job="otel-collector"})'
        ),
        30,
        "send_failed_log_records in Prometheus",
    )
    assert float(failed[0]["value"][1]) > 0
    send(range(20, 30))
    poll(lambda: set(stack.loki.seqs()) >= set(range(20, 30)), 30, "records after the 400")
    lost = set(range(10, 20)) - set(stack.loki.seqs())
    print(f"records in the push Loki rejected with 400 (dropped, counted): {sorted(lost)}")
