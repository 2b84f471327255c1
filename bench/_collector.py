"""The project's own Collector (collector/build.sh) with a discarding pipeline, for benchmarks.

``NopCollector`` starts ``otelcol-assist`` with ``bench/nop-collector.yaml`` (OTLP/HTTP
receiver -> nop exporter), optionally pinned to one CPU with ``taskset`` so it shares the
load generator's core, not the server's. ``accepted()`` reads the receiver's own counter, so
a benchmark can show that the records it claims to have exported arrived.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from types import TracebackType

from tests import servers

ROOT = Path(__file__).resolve().parent.parent
CONFIG = Path(__file__).resolve().parent / "nop-collector.yaml"


def binary() -> str:
    """The otelcol-assist binary (built or found in the cache by collector/build.sh)."""
    out = subprocess.run(
        [str(ROOT / "collector" / "build.sh")], capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def pin(cpu: int | None) -> list[str]:
    """``taskset -c CPU`` when there is taskset and more than one CPU, else nothing."""
    if cpu is None or not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(cpu)]


class NopCollector:
    """A running otelcol-assist that receives OTLP/HTTP and discards it."""

    def __init__(self, cpu: int | None = None) -> None:
        self.cpu = cpu
        self.http_port = servers.free_port()
        self.metrics_port = servers.free_port()
        self.endpoint = f"http://127.0.0.1:{self.http_port}"
        self.process: servers.ManagedProcess | None = None

    def __enter__(self) -> NopCollector:
        work = Path(tempfile.mkdtemp(prefix="otel-assist-bench-collector-"))
        self.process = servers.ManagedProcess(
            "nop collector",
            [*pin(self.cpu), binary(), f"--config={CONFIG}"],
            ready=lambda: servers.port_open(self.http_port),
            log_path=work / "collector.log",
            env={
                "BENCH_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{self.http_port}",
                "BENCH_COLLECTOR_METRICS_PORT": str(self.metrics_port),
            },
            start_timeout=60,
        ).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process is not None:
            self.process.stop()

    def accepted(self) -> int:
        """Log records the Collector's OTLP receiver accepted so far."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        return int(
            sum(
                float(line.rpartition(" ")[2])
                for line in text.splitlines()
                if line.startswith("otelcol_receiver_accepted_log_records")
            )
        )
