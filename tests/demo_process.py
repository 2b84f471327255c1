"""Start ``otel-assist demo`` as a real subprocess for the demo and browser tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.polling import poll
from tests.servers import free_port

#: Variables that would point the demo at real servers; the tests use embedded defaults.
_EXTERNAL = (
    "REDIS_URL",
    "DATABASE_URL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_ASSIST_HISTORY_URL",
    "GRAFANA_URL",
    "OTEL_LOGS_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_SERVICE_NAME",
    "OTEL_ASSIST_HISTORY_TOKEN",
    "OTEL_EXPORTER_PROMETHEUS_PORT",
)


@dataclass
class DemoProcess:
    proc: subprocess.Popen[bytes]
    base_url: str
    token: str
    state_dir: Path
    stdout_path: Path

    @property
    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url + "/api/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as a process manager would, and wait for the clean exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)


def start_demo(
    workdir: Path,
    *args: str,
    token: str = "demo-test-token-7b1c",
    env: dict[str, str] | None = None,
    wait_ready: bool = True,
    stdout: int | None = None,
) -> DemoProcess:
    """Run the demo in ``workdir`` (its state dir lives there) and wait for its API.

    ``stdout`` replaces the capture file with a file descriptor (a pty, in the TTY test);
    ``wait_ready=False`` returns at once (rest_service running elsewhere)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    state_dir = workdir / ".otel-assist"
    clean_env = {k: v for k, v in os.environ.items() if k not in _EXTERNAL}
    clean_env.update({"REST_SERVICE_TOKEN": token, "PYTHONUNBUFFERED": "1", **(env or {})})
    stdout_path = workdir / "demo-stdout.txt"
    with stdout_path.open("wb") as capture:
        out = capture.fileno() if stdout is None else stdout
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("otel-assist")),
                "demo",
                "--port",
                str(port),
                "--state-dir",
                str(state_dir),
                *args,
            ],
            cwd=workdir,
            env=clean_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    demo = DemoProcess(proc, f"http://127.0.0.1:{port}", token, state_dir, stdout_path)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"demo exited early ({proc.returncode}):\n{demo.stdout}")
        try:
            return httpx.get(demo.base_url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    if wait_ready:
        poll(ready, 90, "the demo's rest_service")
    return demo
