"""The shipper's local behaviour: spool cap, torn lines, and an unreachable rest_service."""

from __future__ import annotations

import time
from pathlib import Path

from otel_assist.history import HistorySettings, HistoryShipper, Spool
from tests import servers


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
