"""Lean HTTP server metrics on the catalog's pre-aggregated instruments.

Recording ``http.server.request.duration`` through the SDK's ``Histogram.record`` costs a
``Measurement`` object, attribute validation and a frozenset key per request, and the two
``active_requests`` up-down-counter calls as much again: together more than a tenth of a
hello-world request (``bench/http_overhead.py``). Here a request costs two dict lookups
keyed by the raw (method, route, status), one ``bisect`` and a few increments under the
instrument's lock (:mod:`otel_assist.metrics.preaggregation`); the allowlist fold runs once per
distinct key. The series reach every metric reader with the rest of the catalog, under
the instrumentation scope ``otel_assist.http``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from otel_assist.metrics import instruments as metrics
from otel_assist.metrics import preaggregation

Key = tuple[str, str | None, int]


class HttpServerMetrics:
    """``http.server.request.duration`` and ``http.server.active_requests`` of the catalog."""

    def __init__(self, catalog: metrics.Catalog) -> None:
        self.duration_spec = catalog["http.server.request.duration"].spec
        self.active_spec = catalog["http.server.active_requests"].spec
        self._duration: preaggregation.ExplicitHistogram = catalog[self.duration_spec.name].raw
        self._active: preaggregation.UpDownCounter = catalog[self.active_spec.name].raw
        self.bounds = self._duration.boundaries

    # -- hot path (event-loop thread)

    def request_started(self, method: str) -> Any:
        """Count a request in flight; returns the handle to pass to request_finished()."""
        series = self._active.keyed(method, _method_attributes)
        self._active.add_in(series, 1)
        return series

    def request_finished(
        self, active: Any, method: str, route: str | None, status: int, seconds: float
    ) -> None:
        self._active.add_in(active, -1)
        self._duration.record_keyed((method, route, status), _duration_attributes, seconds)


def _method_attributes(method: Hashable) -> dict[str, Any]:
    return {"http.request.method": method}


def _duration_attributes(key: Hashable) -> dict[str, Any]:
    method, route, status = key if isinstance(key, tuple) else (key, None, None)
    return {
        "http.request.method": method,
        "http.route": route,
        "http.response.status_code": status,
    }


_current = HttpServerMetrics(metrics.catalog())


def current() -> HttpServerMetrics:
    """The process's HTTP server metrics (part of the catalog, built once)."""
    return _current
