"""otel-assist: OpenTelemetry distribution for the assistant services."""
