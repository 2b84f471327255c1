"""log_export: CPU microseconds per record to encode an OTLP log batch, ours / official.

The export thread's main cost is serializing each batch into an ``ExportLogsServiceRequest``;
it holds the GIL while it does, so it slows the host service. This compares
``otel_assist.logs.otlp_encoder.OTLPLogEncoder`` with the stock exporter's
``encode_logs(batch).SerializeToString()`` (what ``OTLPLogExporter.export`` runs) on the
same 512-record batch of bridged records (``LogQueue``'s default batch size), built the way
the export thread builds them: ``to_log_record`` on realistic structlog event dicts.

Both run in one process in interleaved rounds, alternating which goes first (this shared
VM's speed drifts by 2x within seconds); the ratio is the median of per-round ratios.
One encoder instance serves every round, as one serves every batch of an exporter, so its
caches are warm after the first batch, as in a running service.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench import BenchResult

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
BATCH = 512
REPEAT = int(os.environ.get("BENCH_LOG_EXPORT_REPEAT", "10"))  # batches per measurement

_EVENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("user message received", "request_in", {"chars": 0}),
    ("memory lookup", "memory_lookup", {"hits": 0, "duration_ms": 0.0}),
    ("llm call finished", "llm_call", {"tokens_in": 0, "tokens_out": 0, "model": "fake-1"}),
    ("reply sent", "queue_push", {"queue": "to_telegram", "size_bytes": 0}),
    ("job finished", "job_end", {"job_id": "reminders", "job_type": "cron", "ok": True}),
]


def _batch() -> list[Any]:
    """512 ReadableLogRecords from event dicts as the bridge sees them (after the
    processors: level, ISO timestamp, service, correlation_id)."""
    from opentelemetry.sdk.resources import Resource

    from otel_assist._otel_compat import ReadableLogRecord
    from otel_assist.logs.export_queue import _SCOPE, to_log_record

    rng = random.Random(7)
    resource = Resource(
        {
            "service.name": "assistant",
            "service.instance.id": "5f0c9a3e-0d7b-4c53-9a56-0c1f7f1e2b8d",
            "deployment.environment.name": "production",
        }
    )
    records = []
    ts = 1_764_272_422_195_687_000
    for i in range(BATCH):
        message, event_type, extra = _EVENTS[i % len(_EVENTS)]
        event: dict[str, Any] = {
            "event": message,
            "level": "info" if i % 20 else "warning",
            "timestamp": "2026-11-27T19:40:22.195687Z",
            "service": "assistant",
            "event_type": event_type,
            "correlation_id": f"{rng.getrandbits(64):016x}-{i // 8}",
            "user_id": rng.randrange(1, 5000),
            "component": "assistant",
        }
        for key, value in extra.items():
            if isinstance(value, bool | str):
                event[key] = value
            elif isinstance(value, int):
                event[key] = rng.randrange(0, 4000)
            else:
                event[key] = round(rng.uniform(0.5, 900.0), 3)
        ts += rng.randrange(10_000, 5_000_000)
        records.append(ReadableLogRecord(to_log_record(ts, event), resource, _SCOPE))
    return records


def _measure(encode: Callable[[Sequence[Any]], bytes], batch: Sequence[Any]) -> float:
    start = time.process_time()
    for _ in range(REPEAT):
        encode(batch)
    return (time.process_time() - start) / (REPEAT * len(batch)) * 1e6


def run() -> BenchResult:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
    )

    from otel_assist._otel_compat import encode_logs
    from otel_assist.logs.otlp_encoder import OTLPLogEncoder

    batch = _batch()
    encoder = OTLPLogEncoder()

    def ours(records: Sequence[Any]) -> bytes:
        return encoder.encode(records).data

    def official(records: Sequence[Any]) -> bytes:
        return bytes(encode_logs(records).SerializeToString())

    ours_bytes, official_bytes = ours(batch), official(batch)  # warm up, and check
    assert ExportLogsServiceRequest.FromString(ours_bytes) == encode_logs(batch)
    results: dict[str, list[float]] = {"ours": [], "official": []}
    for round_no in range(ROUNDS):
        order = [("ours", ours), ("official", official)]
        if round_no % 2:
            order.reverse()
        for name, encode in order:
            results[name].append(_measure(encode, batch))
    ratios = [o / b for o, b in zip(results["ours"], results["official"], strict=True)]
    med = {name: statistics.median(values) for name, values in results.items()}
    for name, values in results.items():
        print(f"{name}: median {med[name]:.2f} us/record (min {min(values):.2f})")
    print(f"per-round ours/official: median {statistics.median(ratios):.3f}")
    print(
        f"{len(official_bytes) / BATCH:.0f} bytes/record, "
        f"byte-identical to official: {ours_bytes == official_bytes}"
    )
    return BenchResult(
        name="log_export",
        ratio=statistics.median(ratios),
        ours=med["ours"],
        baseline=med["official"],
        unit="us/record",
        target="< 1.0",
        extra={"rounds": results, "batch": BATCH},
    )
