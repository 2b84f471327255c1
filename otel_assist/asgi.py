"""The import path ``otel_assist.asgi`` from before the package was laid out by concern.

The middleware lives in :mod:`otel_assist.web.asgi`; services and docs written against
``from otel_assist.asgi import instrument_app`` keep working through these re-exports
(typed, so a type checker sees the same names).
"""

from otel_assist.web.asgi import (
    TelemetryMiddleware,
    instrument_app,
    metrics_endpoint,
    metrics_response_body,
    route_template,
)

__all__ = [
    "TelemetryMiddleware",
    "instrument_app",
    "metrics_endpoint",
    "metrics_response_body",
    "route_template",
]
