"""The log pipeline, one module per stage.

structlog call -> ``processors`` (correlation, redaction, event types, callsite) ->
stdout JSON line and ``export_queue`` (bounded, counted, never blocks) ->
``otlp_encoder`` -> ``otlp_exporter`` (OTLP/HTTP to the Collector). ``configure`` wires
them together; ``otel_assist.logs`` keeps the names the old single module had.
"""

from otel_assist.logs.configure import (
    BRIDGE,
    LIBRARY_LOGGERS,
    configure_logging,
    get_logger,
    shared_processors,
    use_console,
)

__all__ = [
    "BRIDGE",
    "LIBRARY_LOGGERS",
    "configure_logging",
    "get_logger",
    "shared_processors",
    "use_console",
]
