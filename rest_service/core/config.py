"""rest_service settings: one pydantic-settings object read from the environment.

Secrets (the API tokens, the database password inside DATABASE_URL) only ever come from the
environment; there are no defaults for them, and ``Settings.__repr__`` hides them so a settings
dump in a log cannot leak them.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Where the embedded SQLite database lives when DATABASE_URL is not set.
DEFAULT_SQLITE_DIR = Path(".otel-assist")
DEFAULT_SQLITE_FILE = DEFAULT_SQLITE_DIR / "rest_service.sqlite3"


class Settings(BaseSettings):
    """Everything rest_service reads from its environment (names are the env variables)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="postgresql+asyncpg://... in production; unset = embedded SQLite file.",
    )
    redis_url: str | None = Field(default=None, description="Redis for the live queue view.")

    rest_service_token: SecretStr | None = Field(default=None, description="read + ingest")
    rest_service_read_token: SecretStr | None = Field(default=None, description="read only")
    rest_service_ingest_token: SecretStr | None = Field(default=None, description="ingest only")
    rest_service_dev_mode: bool = Field(
        default=False, description="Allow starting without any token (auth disabled)."
    )

    auth_failure_limit: int = Field(
        default=20,
        ge=0,
        description="Failed token checks per client address and window before 429 (0: off).",
    )
    auth_failure_window_seconds: float = Field(default=60.0, gt=0, le=86_400)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or networks (comma-separated, e.g. 10.0.0.5,172.18.0.0/16) "
        "of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed. "
        "Default: none, so a client cannot pick the address the failed-auth limit counts.",
    )

    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_batch_events: int = Field(default=1000, ge=1, le=100_000)
    max_payload_bytes: int = Field(default=64 * 1024, ge=256)
    max_clock_skew_seconds: int = Field(
        default=300,
        ge=0,
        le=7 * 86_400,
        description="Event timestamps later than now + this are refused (422): a producer "
        "clock this far ahead would date rows into the future.",
    )

    retention_days: int = Field(default=7, ge=1)
    retention_interval_seconds: float = Field(default=600.0, gt=0)
    retention_batch_size: int = Field(default=5000, ge=1)
    retention_enabled: bool = True

    migrate_on_start: bool | None = Field(
        default=None,
        description="Run Alembic upgrade at startup. Unset: on for the embedded SQLite only.",
    )
    queue_names: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["to_secretary", "to_telegram"],
        description="Queues always listed by /queue-stats and /queue-stats/current.",
    )
    stuck_after_minutes: int = Field(default=60, ge=1, le=10_080)
    exact_percentile_limit: int = Field(
        default=50_000,
        ge=0,
        description="Above this many finished runs in the window, p95 comes from the rollup "
        "histogram instead of percentile_cont over raw rows.",
    )
    db_pool_size: int = Field(default=10, ge=1)
    gc_threshold: int = Field(
        default=10_000,
        ge=0,
        description="While the app runs: the garbage collector's first threshold (Python's "
        "default is 700), and the objects left from startup are frozen out of its scans. 0 "
        "leaves the collector as Python set it. See rest_service/core/heap.py.",
    )
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)

    # Loki's query API, read by the admin Logs page, the correlation timeline and
    # ``otel-assist follow`` (unset: those say so and show what Postgres has).
    loki_url: str | None = Field(default=None, description="e.g. http://loki:3100")
    loki_org_id: str | None = Field(
        default=None, description="X-Scope-OrgID header, for a multi-tenant Loki."
    )
    loki_username: str | None = Field(default=None, description="basic auth (a proxy's)")
    loki_password: SecretStr | None = Field(default=None, description="basic auth password")
    loki_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    # Prometheus's HTTP API, read by the admin Metrics page (rest_service.prometheus). The
    # default is Prometheus's own listen address; compose sets http://prometheus:9090.
    prometheus_url: str | None = Field(
        default="http://localhost:9090",
        description="Prometheus base URL for the admin Metrics page (empty: page says so).",
    )
    prometheus_timeout_seconds: float = Field(
        default=3.0,
        gt=0,
        le=30,
        description="Whole-page budget for the Metrics page's queries: an unreachable or "
        "slow Prometheus costs the page at most this long, then a notice.",
    )

    # Admin pages (rest_service/admin): Grafana links and sessions.
    grafana_url: str | None = Field(
        default=None, description="Grafana base URL; enables the admin pages' Grafana links."
    )
    grafana_loki_datasource_uid: str = Field(default="loki", description="for Explore links")
    grafana_prometheus_datasource_uid: str = Field(default="prometheus")
    rest_service_admin_session_seconds: int = Field(
        default=8 * 3600, description="admin session lifetime (60..604800)"
    )
    rest_service_admin_session_secret: SecretStr | None = Field(
        default=None, description="signing key of admin sessions; default: derived"
    )

    # Cron-monitor sweeper (rest_service/monitor_sweeper.py).
    monitor_sweep_enabled: bool = True
    monitor_sweep_interval_seconds: float = Field(default=15.0, ge=0.05, le=3600)
    monitor_metric_limit: int = Field(default=100, ge=1, le=100)

    @field_validator("rest_service_admin_session_seconds", mode="before")
    @classmethod
    def _session_seconds(cls, value: object) -> object:
        """Named in the message (the old admin reader's wording), so a typo fails at start
        with the variable an operator sets."""
        name = "REST_SERVICE_ADMIN_SESSION_SECONDS"
        if isinstance(value, str):
            if not value.strip():
                return 8 * 3600
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f"{name} must be a whole number of seconds") from None
        if isinstance(value, int) and not 60 <= value <= 7 * 24 * 3600:
            raise ValueError(f"{name} must be within 60..604800")
        return value

    @field_validator("grafana_url", mode="before")
    @classmethod
    def _grafana_url(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().rstrip("/") or None
        return value

    @field_validator("queue_names", mode="before")
    @classmethod
    def _split_queue_names(cls, value: object) -> object:
        """Accept ``QUEUE_NAMES=a,b`` as well as a JSON list."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("prometheus_url")
    @classmethod
    def _check_prometheus_url(cls, value: str | None) -> str | None:
        """An http(s) URL with a host, or empty (the Metrics page then says it is not
        configured): a typo fails at startup instead of on every page view."""
        if value is None or not value.strip():
            return None
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(value.strip())
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("PROMETHEUS_URL is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("PROMETHEUS_URL must be an http:// or https:// URL with a host")
        return value.strip()

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_trusted_proxies(cls, value: object) -> object:
        """``TRUSTED_PROXIES=10.0.0.5, 172.18.0.0/16``; each entry must parse as an address
        or network, so a typo fails at startup instead of trusting nothing (or everything)."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for entry in value:
                try:
                    ipaddress.ip_network(str(entry), strict=False)
                except ValueError:
                    raise ValueError(
                        f"TRUSTED_PROXIES: {str(entry)[:64]!r} is not an IP address or network"
                    ) from None
        return value

    @property
    def effective_database_url(self) -> str:
        """DATABASE_URL, or the embedded SQLite file (created on first use)."""
        if self.database_url:
            url = self.database_url
            # Accept the plain libpq form operators paste from elsewhere.
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+asyncpg://" + url.split("://", 1)[1]
            return url
        return f"sqlite+aiosqlite:///{DEFAULT_SQLITE_FILE.resolve()}"

    @property
    def uses_embedded_sqlite(self) -> bool:
        return not self.database_url

    @property
    def should_migrate_on_start(self) -> bool:
        if self.migrate_on_start is not None:
            return self.migrate_on_start
        return self.uses_embedded_sqlite

    @property
    def auth_enabled(self) -> bool:
        return any(
            t is not None and t.get_secret_value()
            for t in (
                self.rest_service_token,
                self.rest_service_read_token,
                self.rest_service_ingest_token,
            )
        )

    def check_startable(self) -> None:
        """Refuse to run an open API by accident: a token is required unless dev mode is on."""
        if not self.auth_enabled and not self.rest_service_dev_mode:
            raise RuntimeError(
                "rest_service refuses to start without a token: set REST_SERVICE_TOKEN "
                "(or REST_SERVICE_READ_TOKEN and REST_SERVICE_INGEST_TOKEN), or set "
                "REST_SERVICE_DEV_MODE=1 to run with authentication disabled."
            )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` and pass it in)."""
    return Settings()
