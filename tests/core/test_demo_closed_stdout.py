"""``make demo | tee demo.log``, then Ctrl-C (issue 10 point 9c): the reader of the demo's
stdout is gone before the demo prints "stopping". The demo must still run its whole
shutdown: exit 0, history flushed into rest_service, nothing left in the spool."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from tests.demo_process import start_demo
from tests.polling import poll

pytestmark = pytest.mark.timeout(300)


def spooled_events(state_dir: Path) -> int:
    spool = state_dir / "history-spool"
    if not spool.exists():
        return 0
    return sum(len(p.read_bytes().splitlines()) for p in spool.glob("*.jsonl"))


def test_shutdown_survives_a_closed_stdout_and_still_flushes(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    stop_reading = threading.Event()

    def tee() -> None:
        """Drains the pipe like tee would, then exits, closing its end."""
        os.set_blocking(read_end, False)
        while not stop_reading.wait(0.05):
            try:
                while os.read(read_end, 65536):
                    pass
            except BlockingIOError:
                continue
        os.close(read_end)

    reader = threading.Thread(target=tee, daemon=True)
    reader.start()
    try:
        demo = start_demo(tmp_path, "--rate", "5", "--seed", "3", stdout=write_end)
    finally:
        os.close(write_end)
    try:
        poll(
            lambda: demo.api.get("/queue-stats/messages", params={"limit": 5}).json(),
            60,
            "first history rows",
        )
        stop_reading.set()  # tee dies first...
        reader.join(5)
        demo.proc.send_signal(signal.SIGINT)  # ...then the demo gets its Ctrl-C
        code = demo.wait(120)
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()
            demo.proc.wait(10)
    assert code == 0
    assert spooled_events(demo.state_dir) == 0
    log_text = (demo.state_dir / "demo.log").read_text(errors="replace")
    assert "shutdown step failed" not in log_text
