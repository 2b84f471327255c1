"""One settings module for the whole distribution.

Standard ``OTEL_*`` variables come first so that an operator who knows OpenTelemetry needs
nothing new; ``OTEL_ASSIST_*`` covers only what the standard does not. Every value is
checked here, once, so a typo fails at ``configure()`` with a message naming the variable
instead of surfacing later as missing telemetry.

``VARIABLES`` declares every variable the library reads (name, type, default, bounds, what
it does); the reader takes defaults and bounds from there and refuses an undeclared name,
and docs/configuration.md is checked against it. ``Settings`` is what configure() uses;
``QueueSettings``, ``JobSettings`` and ``HistorySettings`` are the parts those components
read (each can also be built on its own, without configure()).
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

LogFormat = Literal["auto", "json", "console"]

_METRICS_EXPORTERS = {"prometheus", "otlp", "console", "none"}
_LOGS_EXPORTERS = {"otlp", "console", "none"}
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
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


# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Variable:
    """One environment variable the library reads: its type, the default applied when it is
    unset (``None``: unset means off / automatic / empty), its bounds and what it does.

    Every read goes through :class:`_Reader`, which takes the default and bounds from here
    and refuses a name that is not declared, so this table is complete by construction;
    tests/test_docs.py checks docs/configuration.md against it."""

    name: str
    type: Literal[
        "int", "bool", "text", "url", "choice", "choices", "level", "list", "patterns", "pairs"
    ]
    default: int | bool | str | None
    doc: str
    low: int = 0
    high: int | None = None


_V = Variable
VARIABLES: tuple[Variable, ...] = (
    # ---- standard OpenTelemetry variables (read here, as the spec defines them)
    _V(
        "OTEL_SERVICE_NAME",
        "text",
        "unknown_service",
        "service name (Prometheus job, Loki service_name)",
    ),
    _V("OTEL_RESOURCE_ATTRIBUTES", "pairs", None, "extra resource attributes, k=v,k=v"),
    _V(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "url",
        "http://localhost:4318",
        "Collector base URL (OTLP/HTTP)",
    ),
    _V("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "url", None, "full URL for logs, overrides the base"),
    _V(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "url",
        None,
        "full URL for metrics, overrides the base",
    ),
    _V(
        "OTEL_METRICS_EXPORTER",
        "choices",
        "prometheus",
        "comma list of prometheus, otlp, console, none",
    ),
    _V(
        "OTEL_LOGS_EXPORTER",
        "choices",
        "otlp",
        "otlp, console or none (JSON lines on stdout either way)",
    ),
    _V("OTEL_METRIC_EXPORT_INTERVAL", "int", 60_000, "OTLP metric push interval, ms", low=100),
    _V(
        "OTEL_EXPORTER_PROMETHEUS_HOST",
        "text",
        "0.0.0.0",
        "bind address of the standalone /metrics server",
    ),
    _V(
        "OTEL_EXPORTER_PROMETHEUS_PORT",
        "int",
        0,
        "serve /metrics on its own port (0: off)",
        high=65535,
    ),
    _V(
        "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS",
        "list",
        "/metrics,/health,/ready",
        "paths without HTTP metrics or access log",
    ),
    _V("OTEL_SDK_DISABLED", "bool", False, "keep JSON logs, export nothing"),
    _V(
        "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
        "int",
        96,
        "attributes per OTel log record (Loki refuses more than 128)",
        low=1,
    ),
    _V("OTEL_EXPORTER_OTLP_HEADERS", "pairs", None, "headers on every OTLP request, k=v,k=v"),
    _V("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "pairs", None, "headers on OTLP log requests"),
    _V("OTEL_EXPORTER_OTLP_COMPRESSION", "text", "none", "gzip or none"),
    _V("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "text", None, "as above, for logs only"),
    _V("OTEL_EXPORTER_OTLP_CERTIFICATE", "text", None, "CA bundle to verify the endpoint"),
    _V("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "text", None, "as above, for logs only"),
    _V(
        "OTEL_PYTHON_DISTRO",
        "text",
        None,
        "under opentelemetry-instrument beside another distro: otel_assist chooses ours",
    ),
    _V("OTEL_PYTHON_CONFIGURATOR", "text", None, "as OTEL_PYTHON_DISTRO, for the configurator"),
    # ---- otel-assist: service and logs
    _V(
        "OTEL_ASSIST_ENVIRONMENT",
        "text",
        "development",
        "deployment.environment.name (a Loki label)",
    ),
    _V("OTEL_ASSIST_SERVICE_VERSION", "text", None, "service.version"),
    _V("OTEL_ASSIST_EXCLUDED_URLS", "list", None, "alias of OTEL_PYTHON_FASTAPI_EXCLUDED_URLS"),
    _V("OTEL_ASSIST_LOG_LEVEL", "level", "INFO", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    _V("OTEL_ASSIST_LOG_FORMAT", "choice", "auto", "json, console, or auto (console on a TTY)"),
    _V("OTEL_ASSIST_LOG_CALLSITE", "bool", False, "filename, lineno, func_name on every line"),
    _V(
        "OTEL_ASSIST_LOG_EVENTS",
        "text",
        "default",
        "library events logged at INFO: default, all, none or a list",
    ),
    _V("OTEL_ASSIST_ACCESS_LOG", "bool", False, "one request line per HTTP request"),
    _V(
        "OTEL_ASSIST_LOG_QUEUE_SIZE",
        "int",
        8192,
        "log records waiting for export before new ones are dropped",
        low=1,
    ),
    # 2048, not the SDK's 512: each export cycle (thread wake, HTTP request, GIL hand-backs
    # while the service logs) has a fixed cost; bench/log_overhead.py measured ours at
    # 1.84-1.97x plain with 512 and 1.61-1.62x with 2048 (bench/README.md).
    _V("OTEL_ASSIST_LOG_BATCH_SIZE", "int", 2048, "records per OTLP request", low=1),
    _V("OTEL_ASSIST_LOG_EXPORT_INTERVAL", "int", 1000, "ms between log exports", low=10),
    _V("OTEL_ASSIST_EXPORT_TIMEOUT", "int", 10_000, "ms per OTLP request", low=100),
    _V("OTEL_ASSIST_SECRET_KEYS", "list", None, "more key fragments to mask, comma-separated"),
    _V("OTEL_ASSIST_SECRET_PATTERNS", "patterns", None, "secret shapes scrubbed from every string"),
    _V(
        "OTEL_ASSIST_METRIC_ATTRIBUTE_LIMIT",
        "int",
        100,
        "distinct values kept per open metric attribute",
        low=1,
    ),
    _V(
        "OTEL_ASSIST_METRICS_DIR",
        "text",
        None,
        "where a service's workers share metric snapshots (unset: automatic, off: never)",
    ),
    _V(
        "OTEL_ASSIST_LOG_RETRY_MAX_BACKOFF",
        "int",
        5_000,
        "ms, longest wait between log export retries",
        low=10,
    ),
    _V(
        "OTEL_ASSIST_LOG_ATTRIBUTE_MAX_BYTES",
        "int",
        16_384,
        "one OTel log attribute is truncated past this",
        low=64,
    ),
    _V(
        "OTEL_ASSIST_LOG_ATTRIBUTES_MAX_BYTES",
        "int",
        49_152,
        "all attributes of one record together",
        low=256,
    ),
    _V(
        "OTEL_ASSIST_LOG_BODY_MAX_BYTES",
        "int",
        65_536,
        "an OTel log body is truncated past this",
        low=64,
    ),
    # ---- otel-assist: history shipping (rest_service)
    _V("OTEL_ASSIST_HISTORY_URL", "url", None, "rest_service API base; unset: history off"),
    _V("OTEL_ASSIST_HISTORY_TOKEN", "text", None, "bearer token with the ingest scope"),
    _V(
        "OTEL_ASSIST_HISTORY_TOKEN_FILE",
        "text",
        None,
        "file holding the token (when the variable above is unset)",
    ),
    _V("OTEL_ASSIST_HISTORY_BATCH_SIZE", "int", 500, "events per POST", low=1, high=100_000),
    _V(
        "OTEL_ASSIST_HISTORY_FLUSH_INTERVAL_MS",
        "int",
        1000,
        "longest time an event waits before a send attempt",
        low=10,
    ),
    _V("OTEL_ASSIST_HISTORY_BUFFER_SIZE", "int", 50_000, "events held in memory per kind", low=1),
    _V("OTEL_ASSIST_HISTORY_TIMEOUT_MS", "int", 10_000, "HTTP timeout per batch", low=100),
    _V("OTEL_ASSIST_HISTORY_RETRY_INITIAL_MS", "int", 500, "first retry delay", low=10),
    _V("OTEL_ASSIST_HISTORY_RETRY_MAX_MS", "int", 30_000, "longest retry delay", low=10),
    _V(
        "OTEL_ASSIST_HISTORY_SPOOL_DIR",
        "text",
        None,
        "directory for the on-disk spool; unset: no spool",
    ),
    _V("OTEL_ASSIST_HISTORY_SPOOL_MAX_BYTES", "int", 256 * 1024 * 1024, "spool size cap", low=1024),
    _V(
        "OTEL_ASSIST_HISTORY_SPOOL_WRITE_INTERVAL_MS",
        "int",
        200,
        "write-ahead interval to the spool",
        high=60_000,
    ),
    _V(
        "OTEL_ASSIST_HISTORY_DEAD_LETTER_FILE",
        "text",
        None,
        "undeliverable events (default: in the spool directory)",
    ),
    _V(
        "OTEL_ASSIST_HISTORY_DEAD_LETTER_MAX_BYTES", "int", 64 * 1024 * 1024, "dead-letter file cap"
    ),
    # ---- otel-assist: queues
    _V("OTEL_ASSIST_QUEUE_CAPTURE_PAYLOAD", "bool", True, "store message payloads in history"),
    _V(
        "OTEL_ASSIST_QUEUE_PAYLOAD_MAX_BYTES",
        "int",
        4096,
        "payload JSON above this is stored truncated",
    ),
    _V(
        "OTEL_ASSIST_QUEUE_MAX_MESSAGE_BYTES",
        "int",
        1024 * 1024,
        "larger messages are too_large (0: no limit)",
    ),
    _V(
        "OTEL_ASSIST_QUEUE_DEAD_LETTER_SUFFIX",
        "text",
        None,
        "dead-letter list = queue name + suffix",
    ),
    _V("OTEL_ASSIST_QUEUE_BLOCK_TIMEOUT_MS", "int", 1000, "BRPOP block time", low=10),
    _V(
        "OTEL_ASSIST_QUEUE_SAMPLE_INTERVAL_MS",
        "int",
        5000,
        "queue length / oldest age sampling interval",
        low=50,
    ),
    _V(
        "OTEL_ASSIST_QUEUE_RECONNECT_MAX_MS",
        "int",
        10_000,
        "longest consumer reconnect delay",
        low=10,
    ),
    _V("OTEL_ASSIST_QUEUE_HISTORY", "bool", True, "queue history events on/off"),
    # ---- otel-assist: cron jobs
    _V(
        "OTEL_ASSIST_JOB_GRACE_MS",
        "int",
        60_000,
        "how late a run may start before it counts as missed",
    ),
    _V(
        "OTEL_ASSIST_JOB_SWEEP_INTERVAL_MS",
        "int",
        15_000,
        "how often missed / stuck runs are looked for",
        low=10,
    ),
    _V(
        "OTEL_ASSIST_JOB_MAX_RUNTIME_MS",
        "int",
        0,
        "default max runtime of track_scheduler jobs (0: no limit)",
    ),
)
#: name -> declaration
DECLARED: Mapping[str, Variable] = {v.name: v for v in VARIABLES}


def default_of(name: str) -> Any:
    """The declared default of ``name`` (``None``: unset)."""
    return _declared(name).default


def _declared(name: str) -> Variable:
    try:
        return DECLARED[name]
    except KeyError:
        raise KeyError(
            f"{name} is read but not declared in otel_assist.settings.VARIABLES"
        ) from None


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
    log_batch_size: int = 2048
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
        reader.text("OTEL_SERVICE_NAME")
        or resource.get("service.name")
        or default_of("OTEL_SERVICE_NAME")
    )
    environment = (
        reader.text("OTEL_ASSIST_ENVIRONMENT")
        or resource.get("deployment.environment.name")
        or resource.get("deployment.environment")
        or default_of("OTEL_ASSIST_ENVIRONMENT")
    )
    return Settings(
        service_name=service_name,
        service_version=reader.text("OTEL_ASSIST_SERVICE_VERSION")
        or resource.get("service.version", ""),
        environment=environment,
        resource_attributes=resource,
        otlp_endpoint=reader.url("OTEL_EXPORTER_OTLP_ENDPOINT")
        or default_of("OTEL_EXPORTER_OTLP_ENDPOINT"),
        otlp_logs_endpoint=reader.url("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"),
        otlp_metrics_endpoint=reader.url("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
        metrics_exporters=reader.choices("OTEL_METRICS_EXPORTER", _METRICS_EXPORTERS),
        logs_exporters=reader.choices("OTEL_LOGS_EXPORTER", _LOGS_EXPORTERS),
        metric_export_interval_ms=reader.integer("OTEL_METRIC_EXPORT_INTERVAL"),
        prometheus_host=reader.text("OTEL_EXPORTER_PROMETHEUS_HOST")
        or default_of("OTEL_EXPORTER_PROMETHEUS_HOST"),
        prometheus_port=reader.integer("OTEL_EXPORTER_PROMETHEUS_PORT"),
        log_level=reader.level("OTEL_ASSIST_LOG_LEVEL"),
        log_format=reader.choice("OTEL_ASSIST_LOG_FORMAT", ("auto", "json", "console")),  # type: ignore[arg-type]
        log_callsite=reader.boolean("OTEL_ASSIST_LOG_CALLSITE"),
        log_queue_size=reader.integer("OTEL_ASSIST_LOG_QUEUE_SIZE"),
        log_batch_size=reader.integer("OTEL_ASSIST_LOG_BATCH_SIZE"),
        log_export_interval_ms=reader.integer("OTEL_ASSIST_LOG_EXPORT_INTERVAL"),
        export_timeout_ms=reader.integer("OTEL_ASSIST_EXPORT_TIMEOUT"),
        secret_keys=_DEFAULT_SECRET_KEYS + reader.words("OTEL_ASSIST_SECRET_KEYS"),
        secret_patterns=reader.patterns("OTEL_ASSIST_SECRET_PATTERNS"),
        log_attribute_max_bytes=reader.integer("OTEL_ASSIST_LOG_ATTRIBUTE_MAX_BYTES"),
        log_attributes_max_bytes=reader.integer("OTEL_ASSIST_LOG_ATTRIBUTES_MAX_BYTES"),
        log_body_max_bytes=reader.integer("OTEL_ASSIST_LOG_BODY_MAX_BYTES"),
        log_attribute_count_limit=reader.integer("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT"),
        log_retry_max_backoff_ms=reader.integer("OTEL_ASSIST_LOG_RETRY_MAX_BACKOFF"),
        excluded_urls=reader.words("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS")
        or reader.words("OTEL_ASSIST_EXCLUDED_URLS")
        or tuple(default_of("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS").split(",")),
        access_log=reader.boolean("OTEL_ASSIST_ACCESS_LOG"),
        metric_attribute_limit=reader.integer("OTEL_ASSIST_METRIC_ATTRIBUTE_LIMIT"),
        sdk_disabled=reader.boolean("OTEL_SDK_DISABLED"),
        metrics_dir=reader.text("OTEL_ASSIST_METRICS_DIR"),
    )


# --------------------------------------------------------------------------- per concern
# The settings of the queue, job and history parts, read here like everything else (each
# has a from_env() so a part can be built without configure()).


@dataclass(frozen=True)
class QueueSettings:
    """``OTEL_ASSIST_QUEUE_*`` variables."""

    max_message_bytes: int = 1024 * 1024
    sample_interval_s: float = 5.0
    block_timeout_s: float = 1.0
    reconnect_initial_s: float = 0.1
    reconnect_max_s: float = 10.0
    dead_letter_suffix: str = ""
    history: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> QueueSettings:
        r = _Reader(os.environ if env is None else env)
        return cls(
            max_message_bytes=r.integer("OTEL_ASSIST_QUEUE_MAX_MESSAGE_BYTES"),
            sample_interval_s=r.integer("OTEL_ASSIST_QUEUE_SAMPLE_INTERVAL_MS") / 1000,
            block_timeout_s=r.integer("OTEL_ASSIST_QUEUE_BLOCK_TIMEOUT_MS") / 1000,
            reconnect_max_s=r.integer("OTEL_ASSIST_QUEUE_RECONNECT_MAX_MS") / 1000,
            dead_letter_suffix=r.text("OTEL_ASSIST_QUEUE_DEAD_LETTER_SUFFIX"),
            history=r.boolean("OTEL_ASSIST_QUEUE_HISTORY"),
        )


@dataclass(frozen=True)
class JobSettings:
    """``OTEL_ASSIST_JOB_*`` variables."""

    grace_s: float = 60.0
    sweep_interval_s: float = 15.0
    max_runtime_s: float | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JobSettings:
        r = _Reader(os.environ if env is None else env)
        max_runtime = r.integer("OTEL_ASSIST_JOB_MAX_RUNTIME_MS")
        return cls(
            grace_s=r.integer("OTEL_ASSIST_JOB_GRACE_MS") / 1000,
            sweep_interval_s=r.integer("OTEL_ASSIST_JOB_SWEEP_INTERVAL_MS") / 1000,
            max_runtime_s=max_runtime / 1000 if max_runtime else None,
        )


@dataclass(frozen=True)
class HistorySettings:
    """``OTEL_ASSIST_HISTORY_*`` (and the queue payload capture options)."""

    url: str = ""
    token: str = ""
    job_path: str = "/job-executions/events"
    queue_path: str = "/queue-stats/messages/batch"
    batch_size: int = 500
    flush_interval_s: float = 1.0
    buffer_size: int = 50_000
    timeout_s: float = 10.0
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    spool_dir: str = ""
    spool_max_bytes: int = 256 * 1024 * 1024
    spool_segment_bytes: int = 4 * 1024 * 1024
    capture_payload: bool = True
    payload_max_bytes: int = 4096
    spool_write_interval_s: float = 0.2
    dead_letter_file: str = ""
    dead_letter_max_bytes: int = 64 * 1024 * 1024

    @property
    def dead_letter_path(self) -> str:
        """The dead-letter file: as configured, else ``dead-letter/history.jsonl`` in the
        spool directory, else none (undeliverable events are then counted and logged)."""
        if self.dead_letter_file:
            return self.dead_letter_file
        if self.spool_dir:
            return str(Path(self.spool_dir) / "dead-letter" / "history.jsonl")
        return ""

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HistorySettings:
        r = _Reader(os.environ if env is None else env)
        token = r.text("OTEL_ASSIST_HISTORY_TOKEN")
        token_file = r.text("OTEL_ASSIST_HISTORY_TOKEN_FILE")
        if not token and token_file:
            try:
                token = Path(token_file).read_text().strip()
            except OSError as exc:
                raise r.fail("OTEL_ASSIST_HISTORY_TOKEN_FILE", f"cannot read: {exc}") from None
        return cls(
            url=r.url("OTEL_ASSIST_HISTORY_URL").rstrip("/"),
            token=token,
            batch_size=r.integer("OTEL_ASSIST_HISTORY_BATCH_SIZE"),
            flush_interval_s=r.integer("OTEL_ASSIST_HISTORY_FLUSH_INTERVAL_MS") / 1000,
            buffer_size=r.integer("OTEL_ASSIST_HISTORY_BUFFER_SIZE"),
            timeout_s=r.integer("OTEL_ASSIST_HISTORY_TIMEOUT_MS") / 1000,
            retry_initial_s=r.integer("OTEL_ASSIST_HISTORY_RETRY_INITIAL_MS") / 1000,
            retry_max_s=r.integer("OTEL_ASSIST_HISTORY_RETRY_MAX_MS") / 1000,
            spool_dir=r.text("OTEL_ASSIST_HISTORY_SPOOL_DIR"),
            spool_max_bytes=r.integer("OTEL_ASSIST_HISTORY_SPOOL_MAX_BYTES"),
            capture_payload=r.boolean("OTEL_ASSIST_QUEUE_CAPTURE_PAYLOAD"),
            payload_max_bytes=r.integer("OTEL_ASSIST_QUEUE_PAYLOAD_MAX_BYTES"),
            spool_write_interval_s=r.integer("OTEL_ASSIST_HISTORY_SPOOL_WRITE_INTERVAL_MS") / 1000,
            dead_letter_file=r.text("OTEL_ASSIST_HISTORY_DEAD_LETTER_FILE"),
            dead_letter_max_bytes=r.integer("OTEL_ASSIST_HISTORY_DEAD_LETTER_MAX_BYTES"),
        )


@dataclass
class _Reader:
    """Typed accessors over an environment mapping; each error names its variable."""

    env: Mapping[str, str]

    def text(self, name: str) -> str:
        _declared(name)  # every read is of a declared variable
        return self.env.get(name, "").strip()

    def fail(self, name: str, problem: str) -> ConfigurationError:
        return ConfigurationError(f"{name}={self.env.get(name, '')!r}: {problem}")

    def integer(self, name: str) -> int:
        var = _declared(name)
        default, low, high = var.default, var.low, var.high
        assert isinstance(default, int)
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

    def boolean(self, name: str) -> bool:
        default = _declared(name).default
        assert isinstance(default, bool)
        raw = self.text(name).lower()
        if not raw:
            return default
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise self.fail(name, "expected true or false")

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        raw = self.text(name).lower() or str(_declared(name).default)
        if raw not in allowed:
            raise self.fail(name, f"expected one of {', '.join(allowed)}")
        return raw

    def choices(self, name: str, allowed: set[str]) -> tuple[str, ...]:
        raw = self.text(name).lower() or str(_declared(name).default)
        values = tuple(v.strip() for v in raw.split(",") if v.strip())
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise self.fail(
                name, f"expected a comma-separated list of {', '.join(sorted(allowed))}"
            )
        if "none" in values:
            return ()
        return values

    def level(self, name: str) -> str:
        raw = self.text(name).upper() or str(_declared(name).default)
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
