"""The metric catalog: one-line helpers, allowlists, names as the contract states them."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import trace

from otel_assist.metrics import instruments as metrics
from otel_assist.testing import Capture

CONTRACT = (Path(__file__).resolve().parents[2] / "docs" / "telemetry-contract.md").read_text()


def test_every_instrument_is_in_the_contract() -> None:
    missing = [
        s.prometheus_name for s in metrics.CATALOG if f"`{s.prometheus_name}`" not in CONTRACT
    ]
    assert not missing


def test_llm_call_records_count_duration_tokens_and_errors(otel_capture: Capture) -> None:
    with metrics.llm_call("gpt-4o") as call:
        call.tokens(input_tokens=100, output_tokens=20)
    with pytest.raises(TimeoutError), metrics.llm_call("gpt-4o"):
        raise TimeoutError
    assert otel_capture.metric_value("llm_requests", model="gpt-4o", status="success") == 1
    assert otel_capture.metric_value("llm_requests", model="gpt-4o", status="error") == 1
    assert (
        otel_capture.metric_value(
            "gen_ai.client.operation.duration", **{"error.type": "TimeoutError"}
        )
        == 1
    )
    usage = otel_capture.metric_points("gen_ai.client.token.usage")
    sums = {p.attributes["gen_ai.token.type"]: p.sum for p in usage}
    assert sums == {"input": 100, "output": 20}


def test_tool_rag_memory_and_messages(otel_capture: Capture) -> None:
    with metrics.tool_call("calendar.create"):
        pass
    with pytest.raises(ValueError), metrics.tool_call("calendar.create"):
        raise ValueError
    with metrics.rag_search():
        pass
    metrics.record_memory_operation("save")
    metrics.record_memory_operation("explode")  # not an allowed operation
    metrics.count_message_processed("telegram", "success")
    assert otel_capture.metric_value("tool_calls", tool_name="calendar.create", status="error") == 1
    assert otel_capture.metric_value("rag_search_duration", status="success") == 1
    assert otel_capture.metric_value("memory_operations", operation="save") == 1
    assert otel_capture.metric_value("memory_operations", operation="_other") == 1
    assert otel_capture.metric_value("messages_processed", source="telegram") == 1


def test_open_attributes_are_bounded(otel_capture: Capture) -> None:
    inst = metrics.catalog()["tool_calls"]
    inst.folder.limit = 3
    for i in range(10):
        inst.add(1, tool_name=f"tool-{i}", status="success")
    inst.add(1, tool_name="x" * 65, status="success")  # too long to be a name
    names = {p.attributes["tool_name"] for p in otel_capture.metric_points("tool_calls")}
    assert names == {"tool-0", "tool-1", "tool-2", "_other"}
    assert otel_capture.metric_value("tool_calls", tool_name="_other") == 8


def test_unknown_attribute_keys_are_dropped(otel_capture: Capture) -> None:
    metrics.catalog()["messages_processed"].add(
        1, source="telegram", status="success", user_id=42, correlation_id="abc"
    )
    (point,) = otel_capture.metric_points("messages_processed")
    assert set(point.attributes) == {"source", "status"}


def test_no_tracer_provider_is_installed(otel_capture: Capture) -> None:
    provider = trace.get_tracer_provider()
    assert type(provider).__module__.startswith("opentelemetry.trace")
    span = provider.get_tracer("x").start_span("would-be-span")
    assert not span.is_recording()
    assert not span.get_span_context().is_valid
