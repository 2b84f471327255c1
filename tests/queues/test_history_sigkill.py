"""A producer SIGKILLed mid-stream while rest_service is down 30 s (real Postgres, real
Redis, real uvicorn): count sent / stored / lost / duplicated.

With a spool directory the shipper writes events ahead to the spool every
``OTEL_ASSIST_HISTORY_SPOOL_WRITE_INTERVAL_MS`` (200 ms) on a thread of its own, so a
SIGKILL loses at most the events acknowledged in the last write interval plus one write.
The next process replays the spool once rest_service is back. The table is printed (run
with ``-s`` to see it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests import servers
from tests.polling import poll
from tests.queues.conftest import REPO, TOKEN, RestService, subprocess_env

OUTAGE_S = 30.0
#: The bound the assertion allows: the 200 ms write interval, one write (serialise,
#: write) and scheduling delay on a loaded test host.
WINDOW_S = float(os.environ.get("SIGKILL_WINDOW_S", "0.5"))


class Producer:
    def __init__(self, env: dict[str, str], redis_url: str, queue: str, n: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.queues.history_producer", redis_url, queue, str(n),
             "0.002"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=env,
        )  # fmt: skip
        self.acked: dict[str, float] = {}
        self.done = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            parts = raw.decode(errors="replace").split()
            if parts == ["DONE"]:
                self.done.set()
            elif len(parts) == 2 and len(parts[0]) == 32:
                self.acked[parts[0]] = float(parts[1])


@pytest.mark.slow
def test_sigkill_mid_stream_with_rest_service_down_loses_at_most_the_write_window(
    rest_service: RestService, redis_server: servers.Redis, queue_name: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    env = subprocess_env(
        OTEL_ASSIST_HISTORY_URL=rest_service.api,
        OTEL_ASSIST_HISTORY_TOKEN=TOKEN,
        OTEL_ASSIST_HISTORY_SPOOL_DIR=str(spool),
        OTEL_ASSIST_HISTORY_RETRY_INITIAL_MS="200",
        OTEL_ASSIST_HISTORY_RETRY_MAX_MS="1000",
        OTEL_ASSIST_LOG_LEVEL="WARNING",
    )
    if "SIGKILL_WRITE_INTERVAL_MS" in os.environ:  # 0: the old spool-on-failure mode
        env["OTEL_ASSIST_HISTORY_SPOOL_WRITE_INTERVAL_MS"] = os.environ["SIGKILL_WRITE_INTERVAL_MS"]
    rest_service.process.stop()
    down_at = time.monotonic()
    try:
        first = Producer(env, redis_server.url, queue_name, 0)
        poll(lambda: len(first.acked) > 2000, 60, "the first producer to push")
        killed_at = time.time()
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
        first.reader.join(10)
        second = Producer(env, redis_server.url, queue_name, 500)
        poll(second.done.is_set, 60, "the second producer to push")
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
    finally:
        rest_service.process.start()
    outage = time.monotonic() - down_at
    q = f"queue_name = '{queue_name}' and direction = 'push'"
    sent = {**first.acked, **second.acked}
    try:
        poll(lambda: not any(spool.glob("*.jsonl")), 90, "the spool to drain")
        poll(lambda: rest_service.count(f"select count(*) from queue_message_logs where {q}")
                 >= len(second.acked), 30, "the second producer's events")  # fmt: skip
    finally:
        second.proc.send_signal(signal.SIGTERM)
        second.proc.communicate(timeout=30)
    rows = rest_service.sql(f"select message_id from queue_message_logs where {q}").split()
    stored = set(rows)
    lost = {mid: t for mid, t in sent.items() if mid not in stored}
    duplicated = len(rows) - len(stored)
    ages = sorted(killed_at - t for t in lost.values())
    print(
        f"\nSIGKILL mid-stream, rest_service down {outage:.0f} s (Postgres):\n"
        f"| producer | sent (acknowledged) | stored | lost | duplicated |\n"
        f"|---|---|---|---|---|\n"
        f"| killed | {len(first.acked)} | {len(set(first.acked) & stored)} | "
        f"{len(set(first.acked) - stored)} | - |\n"
        f"| next | {len(second.acked)} | {len(set(second.acked) & stored)} | "
        f"{len(set(second.acked) - stored)} | - |\n"
        f"| total | {len(sent)} | {len(stored & set(sent))} | {len(lost)} | {duplicated} |\n"
        f"lost events acknowledged {ages[0] if ages else 0:.3f}..{ages[-1] if ages else 0:.3f}"
        f" s before the kill"
    )
    assert outage >= OUTAGE_S
    assert duplicated == 0
    assert stored <= set(sent)  # nothing invented
    assert set(second.acked) <= stored
    # Only the last write window can be lost: everything acknowledged earlier is stored.
    assert all(age <= WINDOW_S for age in ages), ages[-5:]
