"""Admin-page settings, read from the environment next to rest_service's own.

Kept apart from ``rest_service.core.config`` so the admin pages can change without touching
the API's settings object. Nothing here is a secret except the optional session secret.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class AdminSettings:
    """``GRAFANA_URL`` enables the Grafana links; the rest has safe defaults."""

    grafana_url: str | None
    loki_datasource_uid: str
    prometheus_datasource_uid: str
    session_seconds: int
    session_secret: str | None

    @classmethod
    def from_env(cls) -> AdminSettings:
        grafana = (os.environ.get("GRAFANA_URL") or "").strip().rstrip("/")
        raw_seconds = os.environ.get("REST_SERVICE_ADMIN_SESSION_SECONDS", "")
        try:
            seconds = int(raw_seconds) if raw_seconds.strip() else 8 * 3600
        except ValueError as exc:
            raise ValueError(
                "REST_SERVICE_ADMIN_SESSION_SECONDS must be a whole number of seconds"
            ) from exc
        if not 60 <= seconds <= 7 * 24 * 3600:
            raise ValueError("REST_SERVICE_ADMIN_SESSION_SECONDS must be within 60..604800")
        return cls(
            grafana_url=grafana or None,
            loki_datasource_uid=os.environ.get("GRAFANA_LOKI_DATASOURCE_UID", "loki"),
            prometheus_datasource_uid=os.environ.get(
                "GRAFANA_PROMETHEUS_DATASOURCE_UID", "prometheus"
            ),
            session_seconds=seconds,
            session_secret=os.environ.get("REST_SERVICE_ADMIN_SESSION_SECRET") or None,
        )
