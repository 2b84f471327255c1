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


# ---------------------------------------------------------------- the declarations (issue 12)

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from otel_assist.settings import (  # noqa: E402
    DECLARED,
    VARIABLES,
    HistorySettings,
    JobSettings,
    QueueSettings,
    Settings,
    _Reader,
)

INTS = [v for v in VARIABLES if v.type == "int"]


def test_every_variable_is_declared_once_with_a_doc() -> None:
    names = [v.name for v in VARIABLES]
    assert len(names) == len(set(names)) == len(DECLARED)
    assert all(v.doc.strip() for v in VARIABLES)
    assert all(n.startswith("OTEL_") for n in names)


def test_a_read_of_an_undeclared_variable_is_refused() -> None:
    with pytest.raises(KeyError, match="OTEL_ASSIST_NOT_A_SETTING"):
        _Reader({"OTEL_ASSIST_NOT_A_SETTING": "1"}).text("OTEL_ASSIST_NOT_A_SETTING")


def test_an_empty_environment_gives_the_declared_defaults_everywhere() -> None:
    """The dataclass defaults and the declarations agree: every part built from an empty
    environment equals the part built from its dataclass defaults."""
    assert load_settings({}) == Settings()
    assert QueueSettings.from_env({}) == QueueSettings()
    assert JobSettings.from_env({}) == JobSettings()
    assert HistorySettings.from_env({}) == HistorySettings()


@pytest.mark.parametrize("var", INTS, ids=lambda v: v.name)
def test_declared_integer_defaults_are_within_their_bounds(var) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(var.default, int)
    assert var.low <= var.default and (var.high is None or var.default <= var.high)
    assert _Reader({}).integer(var.name) == var.default


@given(
    var=st.sampled_from(INTS),
    value=st.integers(min_value=-(2**70), max_value=2**70),
    padding=st.sampled_from(["", " ", "\t", "\n "]),
)
def test_integers_are_accepted_within_bounds_and_refused_naming_the_variable(
    var, value: int, padding: str
) -> None:  # type: ignore[no-untyped-def]
    reader = _Reader({var.name: f"{padding}{value}{padding}"})
    inside = value >= var.low and (var.high is None or value <= var.high)
    if inside:
        assert reader.integer(var.name) == value
    else:
        with pytest.raises(ConfigurationError, match=var.name):
            reader.integer(var.name)


@given(
    var=st.sampled_from(INTS),
    raw=st.text(
        alphabet=st.characters(blacklist_categories=("Nd",), codec=None), min_size=1
    ).filter(lambda s: s.strip() != ""),
)
def test_a_non_integer_is_refused_naming_the_variable(var, raw: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError, match=var.name):
        _Reader({var.name: raw}).integer(var.name)
