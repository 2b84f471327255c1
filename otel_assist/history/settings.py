"""``OTEL_ASSIST_HISTORY_*`` (and the queue payload capture options): where history goes,
how it is batched, spooled and set aside."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from otel_assist.settings import _Reader


@dataclass(frozen=True)
class HistorySettings:
    """``OTEL_ASSIST_HISTORY_*`` (and the queue payload capture options)."""

    url: str = ""
    token: str = ""
    job_path: str = "/job-executions/events"
    queue_path: str = "/queue-stats/messages/batch"
    batch_size: int = 500
    flush_interval_s: float = 1.0
    buffer_size: int = 50_000
    timeout_s: float = 10.0
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    spool_dir: str = ""
    spool_max_bytes: int = 256 * 1024 * 1024
    spool_segment_bytes: int = 4 * 1024 * 1024
    capture_payload: bool = True
    payload_max_bytes: int = 4096
    spool_write_interval_s: float = 0.2
    dead_letter_file: str = ""
    dead_letter_max_bytes: int = 64 * 1024 * 1024

    @property
    def dead_letter_path(self) -> str:
        """The dead-letter file: as configured, else ``dead-letter/history.jsonl`` in the
        spool directory, else none (undeliverable events are then counted and logged)."""
        if self.dead_letter_file:
            return self.dead_letter_file
        if self.spool_dir:
            return str(Path(self.spool_dir) / "dead-letter" / "history.jsonl")
        return ""

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HistorySettings:
        r = _Reader(os.environ if env is None else env)
        token = r.text("OTEL_ASSIST_HISTORY_TOKEN")
        token_file = r.text("OTEL_ASSIST_HISTORY_TOKEN_FILE")
        if not token and token_file:
            try:
                token = Path(token_file).read_text().strip()
            except OSError as exc:
                raise r.fail("OTEL_ASSIST_HISTORY_TOKEN_FILE", f"cannot read: {exc}") from None
        return cls(
            url=r.url("OTEL_ASSIST_HISTORY_URL").rstrip("/"),
            token=token,
            batch_size=r.integer("OTEL_ASSIST_HISTORY_BATCH_SIZE", 500, 1, 100_000),
            flush_interval_s=r.integer("OTEL_ASSIST_HISTORY_FLUSH_INTERVAL_MS", 1000, 10) / 1000,
            buffer_size=r.integer("OTEL_ASSIST_HISTORY_BUFFER_SIZE", 50_000, 1),
            timeout_s=r.integer("OTEL_ASSIST_HISTORY_TIMEOUT_MS", 10_000, 100) / 1000,
            retry_initial_s=r.integer("OTEL_ASSIST_HISTORY_RETRY_INITIAL_MS", 500, 10) / 1000,
            retry_max_s=r.integer("OTEL_ASSIST_HISTORY_RETRY_MAX_MS", 30_000, 10) / 1000,
            spool_dir=r.text("OTEL_ASSIST_HISTORY_SPOOL_DIR"),
            spool_max_bytes=r.integer(
                "OTEL_ASSIST_HISTORY_SPOOL_MAX_BYTES", 256 * 1024 * 1024, 1024
            ),
            capture_payload=r.boolean("OTEL_ASSIST_QUEUE_CAPTURE_PAYLOAD", True),
            payload_max_bytes=r.integer("OTEL_ASSIST_QUEUE_PAYLOAD_MAX_BYTES", 4096, 0),
            spool_write_interval_s=r.integer(
                "OTEL_ASSIST_HISTORY_SPOOL_WRITE_INTERVAL_MS", 200, 0, 60_000
            )
            / 1000,
            dead_letter_file=r.text("OTEL_ASSIST_HISTORY_DEAD_LETTER_FILE"),
            dead_letter_max_bytes=r.integer(
                "OTEL_ASSIST_HISTORY_DEAD_LETTER_MAX_BYTES", 64 * 1024 * 1024, 0
            ),
        )
