"""log_overhead: CPU microseconds per log call, whole path, otel_assist / plain structlog JSON.

Every set-up writes the same ``log.info(...)`` line as JSON and, where it exports, sends it
over OTLP/HTTP to the project's own Collector (``bench/_collector.py``: OTLP receiver -> nop
exporter, a separate process whose CPU is not counted). CPU time is the benchmark process's
(``time.process_time``): the caller's cost *and* the export thread's (building the record,
encoding it, the HTTP POST), because each round ends with a flush inside the timed region.

* ``structlog``: plain structlog, fast configuration (level, ISO timestamp, orjson renderer,
  bytes logger, cached loggers), no export - the baseline;
* ``ours``: what ``otel_assist.configure()`` installs, exporting to the Collector;
* ``structlog_otel`` (upstream anchor): the same plain structlog chain plus
  ``opentelemetry-instrumentation-structlog``'s ``StructlogProcessor`` -> SDK
  ``LoggerProvider`` -> ``BatchLogRecordProcessor`` -> the stock ``OTLPLogExporter``;
* ``stdlib_otel`` (upstream anchor): structlog -> stdlib logging -> a JSON formatter and the
  SDK's ``LoggingHandler`` -> ``BatchLogRecordProcessor`` -> the stock ``OTLPLogExporter``.

Each set-up runs in its own worker process (spawned once, kept warm), and the parent
drives interleaved rounds, one worker logging at a time while the others wait on their
pipe: this shared VM's speed drifts by 2x within seconds, so back-to-back runs would
compare the weather, not the code, and a single process would make every set-up pay for
the others' imports and objects (with the anchors' SDK, exporter and protobuf modules
loaded in the same process, ours measured 2.16-2.29 where it measured 1.82 without them:
a bigger heap makes each garbage collection dearer, and ours allocates more per call than
plain). CPU time is each worker's own ``process_time`` (its export thread included). The
ratio is the median of per-round ours/structlog ratios. Each exporting set-up
has its own Collector, whose accepted count is checked against the calls it made, so a
set-up cannot look cheap by not sending: a round logs CALLS lines in a tight loop, far
faster than any service, so every queue (ours and the stock BatchLogRecordProcessor's,
default 8192 and 2048) is sized to hold a whole round instead of dropping.

``opentelemetry-instrumentation-structlog`` is not a dependency: installed into the
virtualenv, ``opentelemetry-instrument`` would load it and double every record. The anchor
loads it from ``.venv/bench-anchors`` when present (``pip install --no-deps --target
.venv/bench-anchors opentelemetry-instrumentation-structlog``) and says so when absent.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
import structlog

from bench import BenchResult
from bench._collector import NopCollector

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
CALLS = int(os.environ.get("BENCH_LOG_CALLS", "10000"))
ANCHORS = Path(__file__).resolve().parent.parent / ".venv" / "bench-anchors"
QUEUE = 4 * CALLS  # room for a whole round: measured, not dropped


class Setup:
    """A named logging configuration that can be switched to, and flushed."""

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        root_handlers: list[logging.Handler],
        flush: Callable[[], Any],
        exports: bool,
    ) -> None:
        self.name = name
        self.config = config
        self.root_handlers = root_handlers
        self.flush = flush
        self.exports = exports
        self.calls = 0

    def activate(self) -> Any:
        structlog.configure(**self.config)
        logging.getLogger().handlers = list(self.root_handlers)
        return structlog.get_logger()


def _plain_processors() -> list[Any]:
    return [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.JSONRenderer(serializer=orjson.dumps),
    ]


def _plain_config(sink: Any, processors: list[Any]) -> dict[str, Any]:
    return {
        "processors": processors,
        "logger_factory": structlog.BytesLoggerFactory(sink.buffer),
        "wrapper_class": structlog.make_filtering_bound_logger(logging.INFO),
        "cache_logger_on_first_use": True,
    }


def _plain(sink: Any) -> Setup:
    return Setup("structlog", _plain_config(sink, _plain_processors()), [], lambda: None, False)


def _ours(sink: Any, endpoint: str) -> Setup:
    import otel_assist

    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    telemetry = otel_assist.configure(
        "bench_logs",
        log_stream=sink,
        metrics_exporters=(),
        log_format="json",
        log_queue_size=QUEUE,
    )
    return Setup(
        "ours",
        dict(structlog.get_config()),
        list(logging.getLogger().handlers),
        telemetry.log_queue.force_flush,
        True,
    )


def _stock_provider(endpoint: str) -> Any:
    from otel_assist._otel_compat import BatchLogRecordProcessor, LoggerProvider, OTLPLogExporter

    provider = LoggerProvider(shutdown_on_exit=False)
    exporter = OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, max_queue_size=QUEUE))
    return provider


def _structlog_otel(sink: Any, endpoint: str) -> Setup | None:
    if ANCHORS.is_dir() and str(ANCHORS) not in sys.path:
        import opentelemetry.instrumentation as instrumentation

        # A regular package: its subpackage from another directory joins through __path__.
        instrumentation.__path__.append(str(ANCHORS / "opentelemetry" / "instrumentation"))
    try:
        from opentelemetry.instrumentation.structlog import StructlogProcessor
    except ImportError:
        print(
            "structlog_otel anchor skipped: opentelemetry-instrumentation-structlog not in "
            f"{ANCHORS} (pip install --no-deps --target {ANCHORS} "
            "opentelemetry-instrumentation-structlog)"
        )
        return None
    provider = _stock_provider(endpoint)
    plain = _plain_processors()
    processors = [*plain[:-1], StructlogProcessor(logger_provider=provider), plain[-1]]
    return Setup("structlog_otel", _plain_config(sink, processors), [], provider.force_flush, True)


def _stdlib_otel(sink: Any, endpoint: str) -> Setup:
    from otel_assist._otel_compat import LoggingHandler

    provider = _stock_provider(endpoint)
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
        True,
    )


def _measure(setup: Setup, calls: int) -> float:
    log = setup.activate()
    log.info("warm up", event_type="request_in", user_id=42, chars=0)
    setup.flush()
    start = time.process_time()
    for i in range(calls):
        log.info("user message received", event_type="request_in", user_id=42, chars=i)
    setup.flush()
    setup.calls += calls + 1
    return (time.process_time() - start) / calls * 1e6


_BUILDERS: dict[str, Callable[[Any, str], Setup | None]] = {
    "ours": _ours,
    "structlog": lambda sink, _endpoint: _plain(sink),
    "structlog_otel": _structlog_otel,
    "stdlib_otel": _stdlib_otel,
}


def _worker(name: str, endpoint: str, conn: Connection) -> None:
    """One set-up in its own process: answers ``calls`` with the CPU us per call of a
    round of that many log calls, ``None`` with the number of calls made, and stops on
    ``-1``. Sends ``None`` first when the set-up is not available (anchor not installed)."""
    from otel_assist import correlation_scope

    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the worker
    logging.getLogger().setLevel(logging.INFO)
    setup = _BUILDERS[name](sink, endpoint)
    if setup is None:
        conn.send(None)
        return
    with correlation_scope("bench-correlation-id"):
        _measure(setup, 1000)  # one unmeasured pass: imports, caches, connections
        conn.send(name)
        while True:
            calls = conn.recv()
            if calls is None:
                conn.send(setup.calls)
            elif calls < 0:
                return
            else:
                conn.send(_measure(setup, calls))


def run() -> BenchResult:
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters: nothing shared
    with NopCollector() as c1, NopCollector() as c2, NopCollector() as c3:
        collectors = {"ours": c1, "structlog_otel": c2, "stdlib_otel": c3}
        workers: dict[str, tuple[Any, Connection]] = {}
        try:
            for name in ("ours", "structlog", "structlog_otel", "stdlib_otel"):
                parent, child = spawn.Pipe()
                endpoint = collectors[name].endpoint if name in collectors else ""
                proc = spawn.Process(target=_worker, args=(name, endpoint, child), daemon=True)
                proc.start()
                if parent.recv() is None:
                    proc.join(30)
                    continue
                workers[name] = (proc, parent)
            names = list(workers)
            results: dict[str, list[float]] = {name: [] for name in names}
            for round_no in range(ROUNDS):
                order = names if round_no % 2 == 0 else list(reversed(names))
                for name in order:
                    conn = workers[name][1]
                    conn.send(CALLS)
                    results[name].append(conn.recv())
            made = {}
            for name, (_proc, conn) in workers.items():
                conn.send(None)
                made[name] = conn.recv()
        finally:
            for proc, conn in workers.values():
                with contextlib.suppress(OSError):  # a worker that died is already gone
                    conn.send(-1)
                proc.join(30)
        accepted = {name: collectors[name].accepted() for name in names if name in collectors}
    for name, count in accepted.items():
        print(f"{name}: {count} records accepted by its Collector")
        if count < made[name]:
            raise RuntimeError(f"{name}: {count} of {made[name]} records")
    ratios = [o / b for o, b in zip(results["ours"], results["structlog"], strict=True)]
    med = {name: statistics.median(values) for name, values in results.items()}
    for name, values in results.items():
        print(f"{name}: median {med[name]:.2f} us/call (min {min(values):.2f})")
    anchors = {f"{n}_ratio": med[n] / med["structlog"] for n in med if n.endswith("_otel")}
    print(f"per-round ours/structlog: median {statistics.median(ratios):.3f}")
    for name, ratio in anchors.items():
        print(f"upstream anchor {name.removesuffix('_ratio')}/structlog: ratio={ratio:.3f}")
    return BenchResult(
        name="log_overhead",
        ratio=statistics.median(ratios),
        ours=med["ours"],
        baseline=med["structlog"],
        unit="us/call",
        target="<= 2.0",
        extra={**anchors, "collector_accepted": accepted, "rounds": results},
    )
