"""event_cost: CPU microseconds of one library event line, logged (INFO) / filtered (DEBUG).

What decides which of the library's own events (docs/event-types.md) are on by default:
the same ``emit()`` call the queue producer, the ASGI middleware, ``metrics.llm_call`` and
the httpx hook make, through what ``otel_assist.configure()`` installs (JSON line to
/dev/null and an OpenTelemetry record to a discarding exporter, flushed inside the timed
region). ``ours`` is the event at INFO (written), ``baseline`` the same call at DEBUG with
the default INFO level (filtered out: what an event that is off costs). Also printed:
the callsite fields (``filename``/``lineno``/``func_name``) on a WARNING line, i.e. what
turning them on for WARNING+ by default adds per warning, and per INFO line (the level
check). Interleaved rounds in one process, medians; CPU time of the whole process.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench import BenchResult

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "11"))
CALLS = int(os.environ.get("BENCH_EVENT_CALLS", "5000"))


def _per_call(fn: Any, calls: int, flush: Any) -> float:
    start = time.process_time()
    for i in range(calls):
        fn(i)
    flush()
    return (time.process_time() - start) / calls * 1e6


def run() -> BenchResult:
    import otel_assist
    from otel_assist import event_types
    from otel_assist.event_types import LEVELS, LogEventType, emit
    from otel_assist.logs import callsite
    from otel_assist.logs.export_queue import DiscardingExporter

    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the benchmark
    telemetry = otel_assist.configure(
        "bench_events",
        log_stream=sink,
        log_exporter=DiscardingExporter(),
        metrics_exporters=(),
        log_format="json",
        log_level="INFO",
    )
    log = otel_assist.get_logger("bench.events")
    flush = telemetry.log_queue.force_flush

    def queue_push(i: int) -> None:
        emit(
            log,
            LogEventType.QUEUE_PUSH,
            "queue push",
            queue_name="to_secretary",
            message_id="0123456789abcdef",
            message_type="human",
            source="telegram",
            user_id=42,
            correlation_id="bench-correlation-id",
            size_bytes=i,
        )

    adder = callsite.all_levels()
    warning_check = callsite.WarningAndAbove()

    def with_callsite(i: int) -> None:
        event = {"event": "x", "level": "warning", "n": i}
        adder(None, "warning", event)  # type: ignore[arg-type]

    def info_check(i: int) -> None:
        warning_check(None, "info", {"event": "x", "level": "info", "n": i})

    results: dict[str, list[float]] = {"info": [], "debug": [], "callsite": [], "check": []}
    on = frozenset({LogEventType.QUEUE_PUSH})
    for round_no in range(ROUNDS + 1):
        order = ["info", "debug"] if round_no % 2 == 0 else ["debug", "info"]
        for name in order:
            LEVELS.info = on if name == "info" else frozenset()  # INFO level: debug is off
            value = _per_call(queue_push, CALLS, flush)
            if round_no:  # round 0 warms imports and caches
                results[name].append(value)
        if round_no:
            results["callsite"].append(_per_call(with_callsite, CALLS, lambda: None))
            results["check"].append(_per_call(info_check, CALLS, lambda: None))
    LEVELS.info = event_types.DEFAULT_INFO
    med = {name: statistics.median(values) for name, values in results.items()}
    for name, label in (
        ("info", "event at INFO (written: JSON line + OTel record)"),
        ("debug", "event at DEBUG (filtered by the INFO level)"),
        ("callsite", "callsite fields on one WARNING+ line"),
        ("check", "WARNING+ callsite check on one INFO line"),
    ):
        print(f"{label}: median {med[name]:.2f} us (min {min(results[name]):.2f})")
    ratios = [i / d for i, d in zip(results["info"], results["debug"], strict=True)]
    return BenchResult(
        name="event_cost",
        ratio=statistics.median(ratios),
        ours=med["info"],
        baseline=med["debug"],
        unit="us/event",
        target="informational: decides docs/event-types.md's defaults",
        extra={"callsite_us": med["callsite"], "info_check_us": med["check"]},
    )
