"""One queue's metric instruments with their attributes folded once, shared by the producer
and the consumer, and the error counter both ends use. Per-message measurements go through
:mod:`otel_assist.metrics.hot`, off the request path."""

from __future__ import annotations

import contextlib
from typing import Any

from otel_assist.metrics import instruments as metrics
from otel_assist.metrics.hot import hot_path


class _Instruments:
    """One queue's instruments with attributes folded once; refreshed if configure()
    installs a new catalog after the producer/consumer was built."""

    def __init__(self, queue_name: str) -> None:
        self.queue_name = queue_name
        self._catalog: metrics.Catalog | None = None
        self._processed: dict[tuple[str, str], dict[str, Any]] = {}
        self._interned: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.refresh()

    def refresh(self) -> _Instruments:
        cat = metrics.catalog()
        if cat is self._catalog:
            return self
        self._catalog = cat
        hot_path.ensure_registered(cat)
        q = self.queue_name
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
        self._processed = {}
        self._interned = {}
        return self

    def processed_attrs(self, source: str, status: str) -> dict[str, Any]:
        """Folded attributes, one dict object per distinct folded value (the hot-path
        buffer sums counters per dict identity)."""
        key = (source, status)
        attrs = self._processed.get(key)
        if attrs is None:
            folded = self.processed.attributes(source=source, status=status)
            attrs = self._interned.setdefault(tuple(sorted(folded.items())), folded)
            if len(self._processed) < 10_000:
                self._processed[key] = attrs
        return attrs


def _count_error(queue_name: str, direction: str, exc: BaseException) -> None:
    with contextlib.suppress(Exception):
        metrics.catalog()["queue_errors"].add(
            1, queue_name=queue_name, direction=direction, error_type=type(exc).__name__
        )
