"""Prometheus's HTTP API (``/api/v1/query_range``), read by the admin Metrics page.

Only range queries, only with expressions from ``rest_service.admin.promql`` (never text
from a request). Every failure (refused connection, timeout, an error answer, a body that is
not Prometheus's JSON) becomes ``PrometheusUnavailable`` with a message fit for the page:
the address without any ``user:password@``, never the raw body beyond one short line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from rest_service.core.config import Settings

#: Prometheus refuses more than 11,000 points per series; the page asks for far fewer.
MAX_POINTS = 11_000
#: An answer larger than this is not read further (a misconfigured URL serving a big file).
MAX_BODY_BYTES = 8 * 1024 * 1024


class PrometheusUnavailable(Exception):
    """Prometheus could not answer; the message is shown on the page as a notice."""


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and ``(unix seconds, value)`` points in
    Prometheus's order. Values are floats parsed from Prometheus's strings (``NaN`` and
    ``±Inf`` included: the chart leaves those out)."""

    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]


def parse_matrix(payload: Any) -> list[Series]:
    """A ``query_range`` answer's series; anything not shaped like one raises."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        error = payload.get("error") if isinstance(payload, dict) else None
        raise PrometheusUnavailable(
            f"Prometheus refused the query: {str(error)[:300]}" if error else
            "Prometheus's answer was not a successful query result"
        )  # fmt: skip
    data = payload.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        raise PrometheusUnavailable("Prometheus's answer was not a range (matrix) result")
    out: list[Series] = []
    for item in data.get("result") or []:
        try:
            labels = {str(k): str(v) for k, v in dict(item["metric"]).items()}
            points = tuple((float(t), float(v)) for t, v in item["values"])
        except (KeyError, TypeError, ValueError):
            raise PrometheusUnavailable("Prometheus's answer had a malformed series") from None
        out.append(Series(labels, points))
    return out


class PrometheusClient:
    """Range queries against ``PROMETHEUS_URL`` with a bounded timeout."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        self.base = (settings.prometheus_url or "").strip().rstrip("/")
        self.shown = without_userinfo(self.base)  # for messages: never a password
        self.timeout = settings.prometheus_timeout_seconds
        self.transport = transport

    @property
    def configured(self) -> bool:
        return bool(self.base)

    def client(self) -> httpx.AsyncClient:
        """One client per page: the page's queries share its connection and timeout."""
        return httpx.AsyncClient(timeout=self.timeout, transport=self.transport)

    async def query_range(
        self, client: httpx.AsyncClient, expr: str, start: int, end: int, step: int
    ) -> list[Series]:
        """``expr`` evaluated every ``step`` seconds from ``start`` to ``end`` (unix seconds,
        whole: the page aligns them to the step so a repeated query answers the same)."""
        if not self.configured:
            raise PrometheusUnavailable(
                "Prometheus is not configured: set PROMETHEUS_URL (e.g. http://prometheus:9090)"
            )
        if step <= 0 or end < start or math.floor((end - start) / step) + 1 > MAX_POINTS:
            raise ValueError("start/end/step out of bounds")  # the page validates first
        params = {"query": expr, "start": str(start), "end": str(end), "step": str(step)}
        try:
            resp = await client.post(f"{self.base}/api/v1/query_range", data=params)
        except httpx.TimeoutException:
            raise PrometheusUnavailable(
                f"Prometheus at {self.shown} did not answer within {self.timeout:g} s"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise PrometheusUnavailable(
                f"Prometheus at {self.shown} is not reachable ({type(exc).__name__})"
            ) from None
        if len(resp.content) > MAX_BODY_BYTES:
            raise PrometheusUnavailable("Prometheus's answer was too large")
        try:
            payload = resp.json()
        except ValueError:
            detail = resp.text.strip().splitlines()[0][:200] if resp.text.strip() else ""
            raise PrometheusUnavailable(
                f"Prometheus at {self.shown} answered {resp.status_code}: {detail}"
            ) from None
        return parse_matrix(payload)


def without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` removed."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unparsable URL)"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
