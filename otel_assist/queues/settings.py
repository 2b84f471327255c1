"""Queue settings (``OTEL_ASSIST_QUEUE_*``), shared by producer, consumer and sampler, and
which history shipper a queue end reports to."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from otel_assist.history.shipper import HistoryShipper, default_shipper
from otel_assist.settings import _Reader


@dataclass(frozen=True)
class QueueSettings:
    """``OTEL_ASSIST_QUEUE_*`` variables."""

    max_message_bytes: int = 1024 * 1024
    sample_interval_s: float = 5.0
    block_timeout_s: float = 1.0
    reconnect_initial_s: float = 0.1
    reconnect_max_s: float = 10.0
    dead_letter_suffix: str = ""
    history: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> QueueSettings:
        r = _Reader(os.environ if env is None else env)
        return cls(
            max_message_bytes=r.integer("OTEL_ASSIST_QUEUE_MAX_MESSAGE_BYTES", 1024 * 1024, 0),
            sample_interval_s=r.integer("OTEL_ASSIST_QUEUE_SAMPLE_INTERVAL_MS", 5000, 50) / 1000,
            block_timeout_s=r.integer("OTEL_ASSIST_QUEUE_BLOCK_TIMEOUT_MS", 1000, 10) / 1000,
            reconnect_max_s=r.integer("OTEL_ASSIST_QUEUE_RECONNECT_MAX_MS", 10_000, 10) / 1000,
            dead_letter_suffix=r.text("OTEL_ASSIST_QUEUE_DEAD_LETTER_SUFFIX"),
            history=r.boolean("OTEL_ASSIST_QUEUE_HISTORY", True),
        )


def _shipper(value: HistoryShipper | None, settings: QueueSettings) -> HistoryShipper | None:
    if not settings.history:
        return None
    shipper = value if value is not None else default_shipper()
    return shipper if shipper.enabled else None
