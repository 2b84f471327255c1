"""One queue's metric instruments with their attributes folded once, shared by the producer
and the consumer, and the error counter both ends use. Per-message measurements are
pre-aggregated in plain Python (:mod:`otel_assist.metrics.preaggregation`)."""

from __future__ import annotations

import contextlib

from otel_assist.metrics import instruments as metrics
from otel_assist.metrics.preaggregation import BoundCounter


class _Instruments:
    """One queue's instruments, each bound once to its series (the catalog is built once per
    process, and a bound handle finds its series again after a reset, so these stay valid
    across configure()). A message then costs no attribute lookups at all."""

    def __init__(self, queue_name: str) -> None:
        self.queue_name = queue_name
        cat = metrics.catalog()
        q = queue_name
        messages = cat["queue_messages"]
        self.pushed = messages.raw.bind(messages.attributes(queue_name=q, direction="push"))
        self.popped = messages.raw.bind(messages.attributes(queue_name=q, direction="pop"))
        wait = cat["queue_wait_duration"]
        self.wait = wait.raw.bind(wait.attributes(queue_name=q))
        processing = cat["queue_processing_duration"]
        self.processing = {
            status: processing.raw.bind(processing.attributes(queue_name=q, status=status))
            for status in ("success", "error")
        }
        self._processed_instrument = cat["messages_processed"]
        #: (source, status) -> counter; the consumer reads it before calling processed().
        self.processed_counters: dict[tuple[str, str], BoundCounter] = {}

    def processed(self, source: str, status: str) -> BoundCounter:
        """``messages_processed_total`` for one (source, status), bound on first use; at
        most 10,000 are kept (source comes from the message, so it is not trusted)."""
        key = (source, status)
        bound = self.processed_counters.get(key)
        if bound is None:
            inst = self._processed_instrument
            bound = inst.raw.bind(inst.attributes(source=source, status=status))
            if len(self.processed_counters) < 10_000:
                self.processed_counters[key] = bound
        return bound


def _count_error(queue_name: str, direction: str, exc: BaseException) -> None:
    with contextlib.suppress(Exception):
        metrics.catalog()["queue_errors"].add(
            1, queue_name=queue_name, direction=direction, error_type=type(exc).__name__
        )
