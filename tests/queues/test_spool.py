"""The shipper's local behaviour: spool cap, torn lines, and an unreachable rest_service."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from otel_assist.history.shipper import HistorySettings, HistoryShipper, Spool
from tests import servers
from tests.queues.conftest import REPO

# Another process replaying the shared spool directory: claims every segment it can,
# prints how many lines it got, deletes what it claimed.
_REPLAY = """
import sys
from otel_assist.history.shipper import Spool
spool = Spool(sys.argv[1], max_bytes=10**6, segment_bytes=10**6)
got = 0
for seg in spool.segments():
    with spool.claim(seg) as lines:
        if lines is not None:
            got += len(lines["queue"])
            spool.remove(seg, {k: len(v) for k, v in lines.items()})
print(got)
"""


def _replay_in_another_process(directory: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _REPLAY, str(directory)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return int(out.stdout.strip())


def test_spool_cap_and_torn_last_line(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), max_bytes=1000, segment_bytes=300)
    lines = [b'{"event_id":"e%03d","queue_name":"q"}' % i for i in range(100)]
    written = spool.append("queue", lines)
    assert 0 < written < 100  # stopped at the cap
    assert spool.total_bytes <= 1000
    segments = spool.segments()
    assert segments
    with segments[-1].open("ab") as fh:
        fh.write(b'q {"event_id":"torn')  # a crash in the middle of a write
    reopened = Spool(str(tmp_path), max_bytes=1000, segment_bytes=300)
    assert reopened.counts["queue"] == written
    read = [line for seg in reopened.segments() for line in Spool.read(seg)["queue"]]
    assert read == lines[:written]


def test_unreachable_rest_service_never_blocks_or_raises(tmp_path: Path) -> None:
    """Nothing listens on the port: submit stays O(1), shutdown returns in time, and every
    event is accounted for (spooled with a spool, dropped and counted without)."""
    url = f"http://127.0.0.1:{servers.free_port()}/api/v1"
    for spool_dir in ("", str(tmp_path / "spool")):
        shipper = HistoryShipper(
            HistorySettings(url=url, flush_interval_s=0.05, retry_initial_s=0.05,
                            retry_max_s=0.2, timeout_s=0.5, spool_dir=spool_dir)
        )  # fmt: skip
        start = time.perf_counter()
        for i in range(5000):
            shipper.submit("queue", {"event_id": f"u{i}", "queue_name": "q", "direction": "push"})
        assert time.perf_counter() - start < 1.0
        time.sleep(0.5)
        start = time.perf_counter()
        shipper.shutdown(timeout_s=1.0)
        assert time.perf_counter() - start < 4.0
        outcome = "spooled" if spool_dir else "dropped"
        assert shipper.stats.get(("queue", outcome), 0) == 5000, shipper.stats
        assert shipper.stats.get(("queue", "retried"), 0) > 0


def test_workers_sharing_a_spool_never_replay_a_segment_still_being_written(
    tmp_path: Path,
) -> None:
    """gunicorn-style workers share one spool directory: another process must not send (and
    delete) the segment this one is appending to, or the lines written after its read
    are lost. Sealed, the segment is replayed exactly once."""
    writer = Spool(str(tmp_path), max_bytes=10**6, segment_bytes=10**6)
    lines = [b'{"event_id":"w%03d"}' % i for i in range(10)]
    assert writer.append("queue", lines[:5]) == 5
    assert _replay_in_another_process(tmp_path) == 0  # locked: being written
    assert writer.append("queue", lines[5:]) == 5
    writer.seal()
    assert _replay_in_another_process(tmp_path) == 10  # every line, in one replay
    assert writer.segments() == []
    assert _replay_in_another_process(tmp_path) == 0  # and never again


def test_a_segment_claimed_for_replay_is_skipped_by_a_second_replayer(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), max_bytes=10**6, segment_bytes=10**6)
    spool.append("queue", [b'{"event_id":"c1"}', b'{"event_id":"c2"}'])
    spool.seal()
    (segment,) = spool.segments()
    with spool.claim(segment) as lines:
        assert lines is not None and len(lines["queue"]) == 2
        assert _replay_in_another_process(tmp_path) == 0  # we hold it
        spool.remove(segment, {k: len(v) for k, v in lines.items()})
    assert spool.segments() == [] and spool.counts["queue"] == 0
