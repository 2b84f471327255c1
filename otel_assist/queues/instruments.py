"""One queue's metric instruments with their attributes folded once, shared by the producer
and the consumer, and the error counter both ends use. Per-message measurements are
pre-aggregated in plain Python (:mod:`otel_assist.metrics.preaggregation`)."""

from __future__ import annotations

import contextlib
from typing import Any

from otel_assist.metrics import instruments as metrics


class _Instruments:
    """One queue's instruments with attributes folded once (the catalog is built once per
    process, so these stay valid across configure())."""

    def __init__(self, queue_name: str) -> None:
        self.queue_name = queue_name
        self._processed: dict[tuple[str, str], dict[str, Any]] = {}
        cat = metrics.catalog()
        q = queue_name
        self.messages = cat["queue_messages"].raw
        self.push_attrs = cat["queue_messages"].attributes(queue_name=q, direction="push")
        self.pop_attrs = cat["queue_messages"].attributes(queue_name=q, direction="pop")
        self.wait = cat["queue_wait_duration"].raw
        self.queue_attrs = cat["queue_wait_duration"].attributes(queue_name=q)
        self.processing = cat["queue_processing_duration"]
        self.processing_attrs = {
            status: self.processing.attributes(queue_name=q, status=status)
            for status in ("success", "error")
        }
        self.processed = cat["messages_processed"]

    def processed_attrs(self, source: str, status: str) -> dict[str, Any]:
        """Folded attributes, cached per (source, status)."""
        key = (source, status)
        attrs = self._processed.get(key)
        if attrs is None:
            attrs = self.processed.attributes(source=source, status=status)
            if len(self._processed) < 10_000:
                self._processed[key] = attrs
        return attrs


def _count_error(queue_name: str, direction: str, exc: BaseException) -> None:
    with contextlib.suppress(Exception):
        metrics.catalog()["queue_errors"].add(
            1, queue_name=queue_name, direction=direction, error_type=type(exc).__name__
        )
