"""One settings object for the whole distribution.

Standard ``OTEL_*`` variables come first so that an operator who knows OpenTelemetry needs
nothing new; ``OTEL_ASSIST_*`` covers only what the standard does not. Every value is
checked here, once, so a typo fails at ``configure()`` with a message naming the variable
instead of surfacing later as missing telemetry.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

LogFormat = Literal["auto", "json", "console"]

_METRICS_EXPORTERS = {"prometheus", "otlp", "console", "none"}
_LOGS_EXPORTERS = {"otlp", "console", "none"}
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
_DEFAULT_EXCLUDED_URLS = "/metrics,/health,/ready"
_DEFAULT_SECRET_KEYS = (
    "token",
    "password",
    "passwd",
    "secret",
    "authorization",
    "api_key",
    "apikey",
    "cookie",
    "private_key",
    "credential",
    # Spellings found leaking (issue 10): X-Api-Key/api-key normalise to apikey already.
    "pwd",
    "auth",
    "bearer",
    "access_key",
)


class ConfigurationError(ValueError):
    """A configuration value is wrong. The message names the variable and the fix."""


@dataclass(frozen=True)
class Settings:
    """Everything configure() needs, already validated."""

    service_name: str = "unknown_service"
    service_version: str = ""
    environment: str = "development"
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    otlp_endpoint: str = "http://localhost:4318"
    otlp_logs_endpoint: str = ""
    otlp_metrics_endpoint: str = ""
    metrics_exporters: tuple[str, ...] = ("prometheus",)
    logs_exporters: tuple[str, ...] = ("otlp",)
    metric_export_interval_ms: int = 60_000
    prometheus_host: str = "0.0.0.0"
    prometheus_port: int = 0
    log_level: str = "INFO"
    log_format: LogFormat = "auto"
    log_callsite: bool = False
    log_queue_size: int = 8192
    log_batch_size: int = 512
    log_export_interval_ms: int = 1000
    export_timeout_ms: int = 10_000
    secret_keys: tuple[str, ...] = _DEFAULT_SECRET_KEYS
    secret_patterns: tuple[str, ...] = ()
    # Loki refuses a record whose structured metadata (attributes) passes 64 KiB
    # (limits_config.max_structured_metadata_size): the bridge truncates below that.
    log_attribute_max_bytes: int = 16_384
    log_attributes_max_bytes: int = 49_152
    log_body_max_bytes: int = 65_536
    # Loki refuses more than 128 structured-metadata entries; resource attributes count.
    log_attribute_count_limit: int = 96
    log_retry_max_backoff_ms: int = 5_000
    excluded_urls: tuple[str, ...] = ("/metrics", "/health", "/ready")
    access_log: bool = False
    metric_attribute_limit: int = 100
    sdk_disabled: bool = False
    metrics_dir: str = ""
    """Where the workers of a multi-process service share metric snapshots ("" = automatic
    for uvicorn/gunicorn workers, "off" = never): see otel_assist.metrics.workers."""

    @property
    def logs_endpoint(self) -> str:
        """Per-signal URL, as the OTLP/HTTP spec derives it from the base endpoint."""
        return self.otlp_logs_endpoint or _signal_url(self.otlp_endpoint, "v1/logs")

    @property
    def metrics_endpoint(self) -> str:
        return self.otlp_metrics_endpoint or _signal_url(self.otlp_endpoint, "v1/metrics")

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigurationError(
                f"configure(): unknown option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return replace(self, **dict(overrides))


def _signal_url(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate settings from the environment (``os.environ`` by default)."""
    env = os.environ if env is None else env
    reader = _Reader(env)
    resource = reader.key_values("OTEL_RESOURCE_ATTRIBUTES")
    service_name = (
        reader.text("OTEL_SERVICE_NAME") or resource.get("service.name") or "unknown_service"
    )
    environment = (
        reader.text("OTEL_ASSIST_ENVIRONMENT")
        or resource.get("deployment.environment.name")
        or resource.get("deployment.environment")
        or "development"
    )
    return Settings(
        service_name=service_name,
        service_version=reader.text("OTEL_ASSIST_SERVICE_VERSION")
        or resource.get("service.version", ""),
        environment=environment,
        resource_attributes=resource,
        otlp_endpoint=reader.url("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318",
        otlp_logs_endpoint=reader.url("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"),
        otlp_metrics_endpoint=reader.url("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
        metrics_exporters=reader.choices("OTEL_METRICS_EXPORTER", _METRICS_EXPORTERS, "prometheus"),
        logs_exporters=reader.choices("OTEL_LOGS_EXPORTER", _LOGS_EXPORTERS, "otlp"),
        metric_export_interval_ms=reader.integer("OTEL_METRIC_EXPORT_INTERVAL", 60_000, 100),
        prometheus_host=reader.text("OTEL_EXPORTER_PROMETHEUS_HOST") or "0.0.0.0",
        prometheus_port=reader.integer("OTEL_EXPORTER_PROMETHEUS_PORT", 0, 0, 65535),
        log_level=reader.level("OTEL_ASSIST_LOG_LEVEL", "INFO"),
        log_format=reader.choice("OTEL_ASSIST_LOG_FORMAT", ("auto", "json", "console"), "auto"),  # type: ignore[arg-type]
        log_callsite=reader.boolean("OTEL_ASSIST_LOG_CALLSITE", False),
        log_queue_size=reader.integer("OTEL_ASSIST_LOG_QUEUE_SIZE", 8192, 1),
        log_batch_size=reader.integer("OTEL_ASSIST_LOG_BATCH_SIZE", 512, 1),
        log_export_interval_ms=reader.integer("OTEL_ASSIST_LOG_EXPORT_INTERVAL", 1000, 10),
        export_timeout_ms=reader.integer("OTEL_ASSIST_EXPORT_TIMEOUT", 10_000, 100),
        secret_keys=_DEFAULT_SECRET_KEYS + reader.words("OTEL_ASSIST_SECRET_KEYS"),
        secret_patterns=reader.patterns("OTEL_ASSIST_SECRET_PATTERNS"),
        log_attribute_max_bytes=reader.integer("OTEL_ASSIST_LOG_ATTRIBUTE_MAX_BYTES", 16_384, 64),
        log_attributes_max_bytes=reader.integer(
            "OTEL_ASSIST_LOG_ATTRIBUTES_MAX_BYTES", 49_152, 256
        ),
        log_body_max_bytes=reader.integer("OTEL_ASSIST_LOG_BODY_MAX_BYTES", 65_536, 64),
        log_attribute_count_limit=reader.integer("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", 96, 1),
        log_retry_max_backoff_ms=reader.integer("OTEL_ASSIST_LOG_RETRY_MAX_BACKOFF", 5_000, 10),
        excluded_urls=reader.words("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS")
        or reader.words("OTEL_ASSIST_EXCLUDED_URLS")
        or tuple(_DEFAULT_EXCLUDED_URLS.split(",")),
        access_log=reader.boolean("OTEL_ASSIST_ACCESS_LOG", False),
        metric_attribute_limit=reader.integer("OTEL_ASSIST_METRIC_ATTRIBUTE_LIMIT", 100, 1),
        sdk_disabled=reader.boolean("OTEL_SDK_DISABLED", False),
        metrics_dir=reader.text("OTEL_ASSIST_METRICS_DIR"),
    )


@dataclass
class _Reader:
    """Typed accessors over an environment mapping; each error names its variable."""

    env: Mapping[str, str]

    def text(self, name: str) -> str:
        return self.env.get(name, "").strip()

    def fail(self, name: str, problem: str) -> ConfigurationError:
        return ConfigurationError(f"{name}={self.env.get(name, '')!r}: {problem}")

    def integer(self, name: str, default: int, low: int = 0, high: int | None = None) -> int:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self.fail(name, "expected an integer") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            raise self.fail(name, f"expected an integer {bound}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.text(name).lower()
        if not raw:
            return default
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise self.fail(name, "expected true or false")

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        raw = self.text(name).lower() or default
        if raw not in allowed:
            raise self.fail(name, f"expected one of {', '.join(allowed)}")
        return raw

    def choices(self, name: str, allowed: set[str], default: str) -> tuple[str, ...]:
        raw = self.text(name).lower() or default
        values = tuple(v.strip() for v in raw.split(",") if v.strip())
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise self.fail(
                name, f"expected a comma-separated list of {', '.join(sorted(allowed))}"
            )
        if "none" in values:
            return ()
        return values

    def level(self, name: str, default: str) -> str:
        raw = self.text(name).upper() or default
        if raw == "WARN":
            raw = "WARNING"
        if raw not in _LEVELS:
            raise self.fail(name, f"expected one of {', '.join(sorted(_LEVELS))}")
        return raw

    def url(self, name: str) -> str:
        raw = self.text(name)
        if not raw:
            return ""
        parsed = urllib.parse.urlparse(raw)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise self.fail(name, "expected an http(s) URL such as http://collector:4318")
        return raw

    def words(self, name: str) -> tuple[str, ...]:
        return tuple(w.strip() for w in self.text(name).split(",") if w.strip())

    def patterns(self, name: str) -> tuple[str, ...]:
        """Regular expressions: a JSON array of strings, or one expression (alternatives
        joined with ``|``). Each is compiled here so a typo fails at configure()."""
        raw = self.text(name)
        if not raw:
            return ()
        if raw.startswith("["):
            try:
                parsed = json.loads(raw)
            except ValueError:
                raise self.fail(name, "expected a JSON array of regular expressions") from None
            if not isinstance(parsed, list) or not all(isinstance(p, str) for p in parsed):
                raise self.fail(name, "expected a JSON array of regular expressions")
            items = tuple(p for p in parsed if p)
        else:
            items = (raw,)
        for item in items:
            try:
                re.compile(item)
            except re.error as exc:
                raise ConfigurationError(
                    f"{name}: {item!r} is not a valid regular expression ({exc})"
                ) from None
        return items

    def key_values(self, name: str) -> dict[str, str]:
        result: dict[str, str] = {}
        for item in self.words(name):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise self.fail(name, "expected key=value pairs separated by commas")
            result[key.strip()] = urllib.parse.unquote(value.strip())
        return result
