"""History: job and queue events shipped in batches to rest_service, never blocking.

``wire`` is the one definition of the wire schema (rest_service validates with it too);
``payload`` builds the events the queue ends and the job tracker submit, and captures a
message's payload; ``shipper`` batches and sends them on its own thread; ``spool`` keeps
them on disk while rest_service is away; ``dead_letter`` sets aside the ones it refuses;
``settings`` is ``OTEL_ASSIST_HISTORY_*``. ``otel_assist.history`` keeps the names the old
single module had.
"""

from otel_assist.history.dead_letter import DeadLetter
from otel_assist.history.payload import PAYLOAD_RAW_KEY, PayloadCapture
from otel_assist.history.shipper import (
    BATCH_MAX_BYTES,
    FIX_LOG_INTERVAL_S,
    KINDS,
    YIELD_EVERY,
    HistoryShipper,
    Kind,
    default_shipper,
    set_default_shipper,
    submit_all,
)
from otel_assist.history.spool import Spool
from otel_assist.settings import HistorySettings

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
