"""One variant of ``log_overhead``, run in its own process: ``python -m bench.log_variants
VARIANT N`` prints the CPU microseconds per log call (all threads, export included).

* ``structlog``: plain structlog, fast configuration (level, ISO timestamp, orjson
  renderer, bytes logger, cached loggers) - the baseline.
* ``ours``: otel_assist.configure(): the JSON line and an OpenTelemetry record per call,
  the record handed to an exporter that discards it.
* ``stdlib_otel``: the common alternative, structlog -> stdlib logging -> a JSON formatter
  and OpenTelemetry's LoggingHandler with a BatchLogRecordProcessor (exporter discarding).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import orjson
import structlog

WARMUP = 2000


def setup_structlog(sink: Any) -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        logger_factory=structlog.BytesLoggerFactory(sink),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )


def setup_ours(sink_text: Any) -> Any:
    import otel_assist
    from otel_assist.log_export import DiscardingExporter

    return otel_assist.configure(
        "bench_logs",
        log_stream=sink_text,
        log_exporter=DiscardingExporter(),
        metrics_exporters=(),
        log_format="json",
    )


def setup_stdlib_otel(sink_text: Any) -> Any:
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from otel_assist.log_export import DiscardingExporter

    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(DiscardingExporter()))
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(serializer=lambda *a, **k: orjson.dumps(*a).decode()),
        ],
    )
    stream = logging.StreamHandler(sink_text)
    stream.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [stream, LoggingHandler(logger_provider=provider)]
    root.setLevel(logging.INFO)
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return provider


def measure(variant: str, n: int) -> float:
    sink_text = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    flush: Any = None
    if variant == "structlog":
        setup_structlog(sink_text.buffer)
    elif variant == "ours":
        flush = setup_ours(sink_text)
    elif variant == "stdlib_otel":
        flush = setup_stdlib_otel(sink_text)
    else:
        raise SystemExit(f"unknown variant {variant}")
    from otel_assist.correlation import correlation_scope

    log = structlog.get_logger()
    with correlation_scope("bench-correlation-id"):
        for i in range(WARMUP):
            log.info("user message received", event_type="request_in", user_id=42, chars=i)
        if flush is not None:
            flush.force_flush()
        start = time.process_time()
        for i in range(n):
            log.info("user message received", event_type="request_in", user_id=42, chars=i)
        if flush is not None:
            flush.force_flush()
        return (time.process_time() - start) / n * 1e6


if __name__ == "__main__":
    print(f"{measure(sys.argv[1], int(sys.argv[2])):.4f}")
