"""configure() is idempotent and a forked worker becomes its own instance."""

from __future__ import annotations

import os
import threading

import structlog

import otel_assist
from otel_assist import telemetry
from tests.otlp_receiver import OTLPReceiver
from tests.polling import poll


def _export_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "otel-assist-log-export")


def test_configure_is_idempotent() -> None:
    current = telemetry.current()
    if current is not None:
        current.shutdown()
    first = otel_assist.configure("idem", metrics_exporters=(), logs_exporters=())
    try:
        assert otel_assist.configure("idem") is first
    finally:
        first.shutdown()
    second = otel_assist.configure("idem", metrics_exporters=(), logs_exporters=())
    try:
        assert second is not first
        assert second.instance_id != first.instance_id
    finally:
        second.shutdown()


def test_forked_child_gets_its_own_instance_id() -> None:
    current = telemetry.current()
    if current is not None:
        current.shutdown()
    with OTLPReceiver() as receiver:
        parent = otel_assist.configure(
            "forky",
            otlp_endpoint=receiver.endpoint,
            metrics_exporters=(),
            log_format="json",
            log_export_interval_ms=50,
        )
        try:
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # child
                try:
                    child = telemetry.current()
                    assert child is not None
                    structlog.get_logger().info("hello from child")
                    child.force_flush(5)
                    # the parent's abandoned queue lets its thread end: one exporter left
                    poll(lambda: _export_threads() == 1, 5, "one export thread")
                    os.write(write_fd, child.instance_id.encode())
                finally:
                    os._exit(0)
            os.close(write_fd)
            child_id = os.read(read_fd, 100).decode()  # empty when the child failed
            os.waitpid(pid, 0)
            structlog.get_logger().info("hello from parent")
            parent.force_flush(5)
            poll(lambda: len(receiver.records()) >= 2, 10, "both records")
            by_body = {r["body"]: r["resource"]["service.instance.id"] for r in receiver.records()}
            assert child_id and child_id != parent.instance_id
            assert by_body["hello from child"] == child_id
            assert by_body["hello from parent"] == parent.instance_id
        finally:
            parent.shutdown()


def test_third_party_meters_and_loggers_follow_the_forked_worker() -> None:
    """Instruments and loggers other libraries took from the global providers before the
    fork (gunicorn --preload) report from the worker, as the worker's instance."""
    from opentelemetry import metrics as otel_metrics
    from opentelemetry._logs import SeverityNumber, get_logger_provider
    from prometheus_client import REGISTRY, generate_latest

    current = telemetry.current()
    if current is not None:
        current.shutdown()
    with OTLPReceiver() as receiver:
        parent = otel_assist.configure(
            "forky3p",
            otlp_endpoint=receiver.endpoint,
            metrics_exporters=("prometheus",),
            prometheus_port=0,
            log_format="json",
            log_export_interval_ms=50,
        )
        try:
            counter = otel_metrics.get_meter("thirdparty").create_counter("thirdparty_widgets")
            api_logger = get_logger_provider().get_logger("thirdparty")
            counter.add(1)
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # child
                try:
                    counter.add(41)
                    api_logger.emit(body="from a library", severity_number=SeverityNumber.INFO)
                    child = telemetry.current()
                    assert child is not None
                    child.force_flush(5)
                    exposition = generate_latest(REGISTRY).decode()
                    line = next(
                        (x for x in exposition.splitlines() if x.startswith("thirdparty_widgets")),
                        "",
                    )
                    os.write(write_fd, f"{child.instance_id}|{line}".encode())
                finally:
                    os._exit(0)
            os.close(write_fd)
            reply = os.read(read_fd, 1000).decode()  # empty when the child failed
            os.waitpid(pid, 0)
            child_id, _, line = reply.partition("|")
            assert child_id and child_id != parent.instance_id
            assert line.endswith(" 41.0"), line  # the worker's own count, not the parent's
            poll(lambda: receiver.records(), 10, "the library's record")
            (record,) = [r for r in receiver.records() if r["body"] == "from a library"]
            assert record["resource"]["service.instance.id"] == child_id
        finally:
            parent.shutdown()
