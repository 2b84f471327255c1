"""History: job and queue events shipped in batches to rest_service, never blocking.

``wire`` is the one definition of the wire schema (rest_service validates with it too);
``shipper`` batches, spools and sends. ``otel_assist.history`` keeps the old names.
"""

from otel_assist.history.shipper import (
    BATCH_MAX_BYTES,
    FIX_LOG_INTERVAL_S,
    KINDS,
    PAYLOAD_RAW_KEY,
    YIELD_EVERY,
    DeadLetter,
    HistorySettings,
    HistoryShipper,
    Kind,
    PayloadCapture,
    Spool,
    default_shipper,
    set_default_shipper,
    submit_all,
)

__all__ = [
    "BATCH_MAX_BYTES",
    "FIX_LOG_INTERVAL_S",
    "KINDS",
    "PAYLOAD_RAW_KEY",
    "YIELD_EVERY",
    "DeadLetter",
    "HistorySettings",
    "HistoryShipper",
    "Kind",
    "PayloadCapture",
    "Spool",
    "default_shipper",
    "set_default_shipper",
    "submit_all",
]
