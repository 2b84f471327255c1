"""log_overhead: CPU microseconds per log call, otel_assist / plain structlog JSON.

Three set-ups of the same ``log.info(...)`` call, measured in one process in interleaved
rounds (this shared VM's speed drifts by 2x within seconds, so separate processes or
back-to-back runs compare the weather, not the code):

* ``structlog``: plain structlog, fast configuration (level, ISO timestamp, orjson renderer,
  bytes logger, cached loggers) - the baseline;
* ``ours``: what ``otel_assist.configure()`` installs: the JSON line *and* an OpenTelemetry
  log record per call, handed to an exporter that discards it;
* ``stdlib_otel``: the common alternative: structlog -> stdlib logging -> a JSON formatter
  and OpenTelemetry's ``LoggingHandler`` with a ``BatchLogRecordProcessor`` (exporter
  discarding).

Each round switches structlog's (and the root logger's) configuration, logs ``CALLS``
lines, and flushes the OpenTelemetry side, all inside the timed region: CPU time of the
whole process, so background threads are counted, not hidden.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from bench import BenchResult

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
CALLS = int(os.environ.get("BENCH_LOG_CALLS", "10000"))


class Setup:
    """A named logging configuration that can be switched to, and flushed."""

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        root_handlers: list[logging.Handler],
        flush: Callable[[], Any],
    ) -> None:
        self.name = name
        self.config = config
        self.root_handlers = root_handlers
        self.flush = flush

    def activate(self) -> Any:
        structlog.configure(**self.config)
        logging.getLogger().handlers = list(self.root_handlers)
        return structlog.get_logger()


def _plain(sink: Any) -> Setup:
    config = {
        "processors": [
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        "logger_factory": structlog.BytesLoggerFactory(sink.buffer),
        "wrapper_class": structlog.make_filtering_bound_logger(logging.INFO),
        "cache_logger_on_first_use": True,
    }
    return Setup("structlog", config, [], lambda: None)


def _ours(sink: Any) -> Setup:
    import otel_assist
    from otel_assist.logs.export_queue import DiscardingExporter

    telemetry = otel_assist.configure(
        "bench_logs",
        log_stream=sink,
        log_exporter=DiscardingExporter(),
        metrics_exporters=(),
        log_format="json",
    )
    return Setup(
        "ours",
        dict(structlog.get_config()),
        list(logging.getLogger().handlers),
        telemetry.log_queue.force_flush,
    )


def _stdlib_otel(sink: Any) -> Setup:
    from otel_assist._otel_compat import BatchLogRecordProcessor, LoggerProvider, LoggingHandler
    from otel_assist.logs.export_queue import DiscardingExporter

    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(DiscardingExporter()))
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )
    stream = logging.StreamHandler(sink)
    stream.setFormatter(formatter)
    config = {
        "processors": [
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        "logger_factory": structlog.stdlib.LoggerFactory(),
        "wrapper_class": structlog.stdlib.BoundLogger,
        "cache_logger_on_first_use": True,
    }
    return Setup(
        "stdlib_otel",
        config,
        [stream, LoggingHandler(logger_provider=provider)],
        provider.force_flush,
    )


def _measure(setup: Setup, calls: int) -> float:
    log = setup.activate()
    log.info("warm up", event_type="request_in", user_id=42, chars=0)
    setup.flush()
    start = time.process_time()
    for i in range(calls):
        log.info("user message received", event_type="request_in", user_id=42, chars=i)
    setup.flush()
    return (time.process_time() - start) / calls * 1e6


def run() -> BenchResult:
    from otel_assist.correlation import correlation_scope

    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the benchmark
    logging.getLogger().setLevel(logging.INFO)
    setups = [_ours(sink), _plain(sink), _stdlib_otel(sink)]
    results: dict[str, list[float]] = {s.name: [] for s in setups}
    with correlation_scope("bench-correlation-id"):
        for setup in setups:  # one unmeasured pass each: imports, caches
            _measure(setup, 1000)
        for round_no in range(ROUNDS):
            order = setups if round_no % 2 == 0 else list(reversed(setups))
            for setup in order:
                results[setup.name].append(_measure(setup, CALLS))
    ratios = [o / b for o, b in zip(results["ours"], results["structlog"], strict=True)]
    med = {name: statistics.median(values) for name, values in results.items()}
    for name, values in results.items():
        print(f"{name}: median {med[name]:.2f} us/call (min {min(values):.2f})")
    stdlib_ratio = med["stdlib_otel"] / med["structlog"]
    print(f"per-round ours/structlog: median {statistics.median(ratios):.3f}")
    print(f"structlog -> stdlib -> OTel LoggingHandler: ratio={stdlib_ratio:.3f}")
    return BenchResult(
        name="log_overhead",
        ratio=statistics.median(ratios),
        ours=med["ours"],
        baseline=med["structlog"],
        unit="us/call",
        target="<= 2.0",
        extra={"stdlib_otel_ratio": stdlib_ratio, "rounds": results},
    )
