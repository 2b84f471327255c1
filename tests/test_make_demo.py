"""`make demo` on a terminal: Ctrl-C stops the demo cleanly and make exits 0, as documented.

Run under a real pseudo-terminal, so the Ctrl-C is the terminal's own (SIGINT to the
foreground process group), exactly what a person pressing it causes.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import time
from pathlib import Path

import pytest

from tests import servers
from tests.polling import poll

ROOT = Path(__file__).resolve().parent.parent


def _read_until(fd: int, needle: bytes, timeout: float, seen: bytearray) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                return needle in seen
            if not chunk:
                return needle in seen
            seen += chunk
            if needle in seen:
                return True
    return False


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_ctrl_c_stops_make_demo_with_status_0(tmp_path: Path) -> None:
    stamp = tmp_path / "demo-venv-stamp"  # the dev venv has the demo extra: no install here
    stamp.touch()
    port = servers.free_port()
    argv = [
        "make",
        "--no-print-directory",
        "demo",
        "DEMO_VENV=.venv",
        f"DEMO_STAMP={stamp}",
        f"DEMO_ARGS=--port {port} --state-dir {tmp_path / 'state'} --seed 3",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "REDIS_URL"))}
    env.pop("DATABASE_URL", None)
    env["OTEL_LOGS_EXPORTER"] = "none"
    pid, fd = pty.fork()
    if pid == 0:  # the child: make on the terminal, as a person runs it
        os.chdir(ROOT)
        os.execvpe(argv[0], argv, env)
    seen = bytearray()
    try:
        assert _read_until(fd, b"running", 120, seen), seen.decode(errors="replace")[-3000:]
        poll(lambda: servers.http_ok(f"http://127.0.0.1:{port}/health"), 30, "demo")
        os.write(fd, b"\x03")  # Ctrl-C, typed on the terminal
        _read_until(fd, b"history flushed", 60, seen)
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            _read_until(fd, b"\x00never", 0.2, seen)  # keep draining the terminal
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        assert status is not None and os.WIFEXITED(status), (status, seen[-2000:])
        assert os.WEXITSTATUS(status) == 0, seen.decode(errors="replace")[-3000:]
        assert b"history flushed into rest_service" in seen
        assert b"Interrupt" not in seen  # make's own "*** [demo] Interrupt"
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
