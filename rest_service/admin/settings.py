"""The admin pages' view of rest_service's settings.

Every value comes from :class:`rest_service.core.config.Settings` (the one place
rest_service reads its environment), handed over by ``create_app(settings)``: the admin
pages never read the environment themselves. Nothing here is a secret except the optional
session secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from rest_service.core.config import Settings


@dataclass(frozen=True)
class AdminSettings:
    """``GRAFANA_URL`` enables the Grafana links; the rest has safe defaults."""

    grafana_url: str | None
    loki_datasource_uid: str
    prometheus_datasource_uid: str
    session_seconds: int
    session_secret: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> AdminSettings:
        secret = settings.rest_service_admin_session_secret
        return cls(
            grafana_url=settings.grafana_url,
            loki_datasource_uid=settings.grafana_loki_datasource_uid,
            prometheus_datasource_uid=settings.grafana_prometheus_datasource_uid,
            session_seconds=settings.rest_service_admin_session_seconds,
            session_secret=secret.get_secret_value() if secret is not None else None,
        )
