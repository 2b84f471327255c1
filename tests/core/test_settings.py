"""Settings: standard OTEL_* variables first, OTEL_ASSIST_* for the rest, clear errors."""

from __future__ import annotations

import pytest

from otel_assist.settings import ConfigurationError, load_settings


def test_defaults_without_environment() -> None:
    s = load_settings({})
    assert s.service_name == "unknown_service"
    assert s.metrics_exporters == ("prometheus",)
    assert s.logs_exporters == ("otlp",)
    assert s.logs_endpoint == "http://localhost:4318/v1/logs"
    assert s.excluded_urls == ("/metrics", "/health", "/ready")


def test_standard_variables_are_read() -> None:
    s = load_settings(
        {
            "OTEL_SERVICE_NAME": "assistant",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod,team=core%20ai",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://other:9999/custom",
            "OTEL_METRICS_EXPORTER": "otlp,prometheus",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "/healthz,/livez",
        }
    )
    assert s.service_name == "assistant"
    assert s.environment == "prod"
    assert s.resource_attributes["team"] == "core ai"
    assert s.logs_endpoint == "http://collector:4318/v1/logs"
    assert s.metrics_endpoint == "http://other:9999/custom"
    assert s.metrics_exporters == ("otlp", "prometheus")
    assert s.logs_exporters == ()
    assert s.excluded_urls == ("/healthz", "/livez")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_METRICS_EXPORTER", "jaeger"),
        ("OTEL_LOGS_EXPORTER", "loki"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "99999"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
        ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
        ("OTEL_ASSIST_LOG_LEVEL", "LOUD"),
        ("OTEL_ASSIST_LOG_FORMAT", "xml"),
        ("OTEL_ASSIST_LOG_CALLSITE", "maybe"),
        ("OTEL_ASSIST_LOG_QUEUE_SIZE", "0"),
    ],
)
def test_wrong_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        load_settings({name: value})
    assert name in str(err.value)
    assert repr(value) in str(err.value)


def test_configure_rejects_bad_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import otel_assist

    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "statsd")
    current = otel_assist.telemetry.current()
    if current is not None:
        current.shutdown()
    with pytest.raises(ConfigurationError, match="OTEL_METRICS_EXPORTER"):
        otel_assist.configure("x")


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="colour"):
        load_settings({}).with_overrides({"colour": "blue"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ()),
        (r"sk-[A-Za-z0-9]{20,}", (r"sk-[A-Za-z0-9]{20,}",)),
        (r'["sk-[a-z]{3,5}", "ssn=(\\d+)"]', ("sk-[a-z]{3,5}", r"ssn=(\d+)")),
    ],
)
def test_secret_patterns(raw: str, expected: tuple[str, ...]) -> None:
    assert load_settings({"OTEL_ASSIST_SECRET_PATTERNS": raw}).secret_patterns == expected


@pytest.mark.parametrize("raw", ["sk-[", '["ok", "("]', '["a", 1]', "[not json"])
def test_bad_secret_patterns_name_the_variable(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="OTEL_ASSIST_SECRET_PATTERNS"):
        load_settings({"OTEL_ASSIST_SECRET_PATTERNS": raw})


def test_record_limits_and_retry_backoff() -> None:
    s = load_settings(
        {
            "OTEL_ASSIST_LOG_ATTRIBUTE_MAX_BYTES": "1000",
            "OTEL_ASSIST_LOG_ATTRIBUTES_MAX_BYTES": "4000",
            "OTEL_ASSIST_LOG_BODY_MAX_BYTES": "2000",
            "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT": "10",
            "OTEL_ASSIST_LOG_RETRY_MAX_BACKOFF": "250",
        }
    )
    assert (s.log_attribute_max_bytes, s.log_attributes_max_bytes, s.log_body_max_bytes) == (
        1000,
        4000,
        2000,
    )
    assert s.log_attribute_count_limit == 10 and s.log_retry_max_backoff_ms == 250
    defaults = load_settings({})
    assert defaults.log_attributes_max_bytes < 65_536  # Loki's structured-metadata limit
    with pytest.raises(ConfigurationError, match="OTEL_ASSIST_LOG_BODY_MAX_BYTES"):
        load_settings({"OTEL_ASSIST_LOG_BODY_MAX_BYTES": "-1"})
