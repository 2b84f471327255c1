"""otel-assist: OpenTelemetry distribution for the assistant services.

``configure()`` is the one call a service makes; ``get_logger()`` is structlog's; the
correlation helpers and the metric catalog live in their own modules.
"""

from otel_assist.correlation import (
    context_with_correlation_id,
    correlation_scope,
    get_correlation_id,
    new_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)
from otel_assist.event_types import LogEventType
from otel_assist.logs.configure import get_logger
from otel_assist.settings import ConfigurationError, Settings
from otel_assist.telemetry import Telemetry, configure

__all__ = [
    "ConfigurationError",
    "LogEventType",
    "Settings",
    "Telemetry",
    "configure",
    "context_with_correlation_id",
    "correlation_scope",
    "get_correlation_id",
    "get_logger",
    "new_correlation_id",
    "reset_correlation_id",
    "set_correlation_id",
]
__version__ = "0.1.0"
