"""OtelCollectorQueueNearlyFull, provoked for real: Loki (its stand-in) down, the Collector's
persistent logs queue filling up, the project's rule firing in real Prometheus; Loki back,
the queue drains and the alert resolves.

The queue is made small (``OTELCOL_LOGS_QUEUE_SIZE=20`` instead of 20000) so it fills in
seconds; the rules are the project's with ``for:`` shortened as in tests/monitoring.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import servers
from tests.collector.conftest import (
    LokiStandIn,
    prom_query,
    start_collector,
    start_service,
)
from tests.monitoring.stack import shortened_rules
from tests.polling import poll

# timeout: room for a first Collector build (collector/build.sh: up to ~10 min cold) + the test.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

ALERT = "OtelCollectorQueueNearlyFull"


def prometheus_config(collector_metrics_port: int, rules: Path) -> str:
    return (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files: ['{rules}/*.yml']\n"
        "scrape_configs:\n"
        "  - job_name: otel-collector\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{collector_metrics_port}']\n"
    )


def alert_state(prom: servers.Prometheus) -> dict[str, str]:
    """Labels of the firing alert, or {} when it is not firing."""
    result = prom_query(prom, f'ALERTS{{alertname="{ALERT}",alertstate="firing"}}')
    return dict(result[0]["metric"]) if result else {}


@pytest.fixture
def traffic_stopper() -> Iterator[threading.Event]:
    stop = threading.Event()
    yield stop
    stop.set()


def test_full_logs_queue_fires_and_resolves_the_alert(
    collector_binary: Path, tmp_path: Path, traffic_stopper: threading.Event
) -> None:
    loki = LokiStandIn()  # not started: Loki is down from the beginning
    rules = shortened_rules(tmp_path / "rules")
    prom = servers.start_prometheus(tmp_path / "prometheus", prometheus_config(1, rules))
    collector = start_collector(
        collector_binary,
        tmp_path / "collector",
        loki.endpoint,
        prom.remote_write_url,
        extra_env={"OTELCOL_LOGS_QUEUE_SIZE": "20"},
    )
    prom.config_path.write_text(prometheus_config(collector.metrics_port, rules))
    prom.reload()
    service = start_service("queue_filler", tmp_path / "services", collector)
    try:

        def send() -> None:
            for seq in itertools.count():
                if traffic_stopper.is_set():
                    return
                with contextlib.suppress(OSError):
                    service.work(seq, user_id=1, correlation_id=f"cid-{seq}")
                time.sleep(0.01)

        threading.Thread(target=send, daemon=True).start()
        labels = poll(lambda: alert_state(prom), 120, f"{ALERT} firing while Loki is down")
        assert labels["service"] == "otel-collector"
        assert labels["exporter"] == "otlp_http/loki"
        assert labels["severity"] == "warning"
        fill = "max(otelcol_exporter_queue_size / otelcol_exporter_queue_capacity)"
        assert float(prom_query(prom, fill)[0]["value"][1]) > 0.8

        loki.start()  # Loki is back: the queue drains, the alert resolves
        traffic_stopper.set()
        poll(lambda: loki.records, 60, "records delivered once Loki is back")
        poll(lambda: not alert_state(prom), 120, f"{ALERT} resolved after the queue drained")
    finally:
        traffic_stopper.set()
        service.process.stop()
        collector.process.stop()
        prom.process.stop()
        loki.stop()
