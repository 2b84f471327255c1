"""Reading log lines from Loki's query API (``GET /loki/api/v1/query_range``).

Used by the admin Logs page, the correlation timeline and ``otel-assist follow``. Two
halves, kept apart on purpose:

- ``LogFilter.logql()`` builds the query from *validated* values only: a service name from
  a strict pattern, a level from Loki's five values, a correlation id from otel_assist's
  own pattern, a user id as an integer, and free text only as a double-quoted LogQL string
  with ``\\`` and ``"`` escaped and control characters refused. Nothing a person types can
  end a string or add a pipeline stage (tests/rest_service/test_loki_query.py fuzzes it).
- ``LokiClient`` sends it with the optional ``X-Scope-OrgID`` and basic auth, and turns
  every failure (not configured, unreachable, an error status) into ``LokiUnavailable``
  with a message a person can act on; credentials never appear in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from otel_assist import correlation
from rest_service.core.config import Settings

#: Loki's ``detected_level`` values and the names people know (Loki: warn for WARNING,
#: fatal for CRITICAL, i.e. OTLP severity FATAL).
LEVELS = {
    "debug": "debug",
    "info": "info",
    "warn": "warning",
    "error": "error",
    "fatal": "critical",
}
#: Time ranges offered; the longest is Loki's retention (loki.yaml: 48h), the cap.
RANGES = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "48h": timedelta(hours=48),
}
MAX_RANGE = max(RANGES.values())
MAX_TEXT = 128
SERVICE_PATTERN = re.compile(r"[A-Za-z0-9._\-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")


class InvalidFilter(ValueError):
    """A filter value that cannot go into a query; the message names the field."""


class LokiUnavailable(Exception):
    """Loki is not configured, not reachable or answered an error (message for people)."""


def quote(value: str) -> str:
    """``value`` as a LogQL double-quoted string. Callers pass only values without control
    characters (``check_text``), so escaping ``\\`` and ``"`` is complete."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_text(raw: str | None, what: str, limit: int = MAX_TEXT) -> str | None:
    """Free text for a filter: trimmed; empty -> None; refused when too long or when it
    holds control characters, line breaks or lone surrogates."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if len(value) > limit:
        raise InvalidFilter(f"{what} is longer than {limit} characters")
    if _CONTROL.search(value):
        raise InvalidFilter(f"{what} must be one line of printable characters")
    return value


@dataclass(frozen=True)
class LogFilter:
    """What the Logs page filters on, each value already validated (``LogFilter.parse``)."""

    service: str | None = None
    level: str | None = None
    correlation_id: str | None = None
    user_id: int | None = None
    text: str | None = None
    range_key: str = "1h"

    @classmethod
    def parse(
        cls,
        *,
        service: str | None = None,
        level: str | None = None,
        correlation_id: str | None = None,
        user_id: str | None = None,
        text: str | None = None,
        range_key: str | None = None,
    ) -> LogFilter:
        """Validate raw form values; ``InvalidFilter`` names the first bad field."""
        svc = (service or "").strip() or None
        if svc is not None and not SERVICE_PATTERN.fullmatch(svc):
            raise InvalidFilter("service names use letters, digits and . _ - only (at most 64)")
        lvl = (level or "").strip() or None
        if lvl is not None and lvl not in LEVELS:
            raise InvalidFilter(f"level must be one of {', '.join(LEVELS.values())}")
        cid = (correlation_id or "").strip() or None
        if cid is not None and not correlation.is_valid(cid):
            raise InvalidFilter(
                "correlation_id uses letters, digits and . _ : - only (at most 128)"
            )
        uid: int | None = None
        raw_uid = (user_id or "").strip()
        if raw_uid:
            if not re.fullmatch(r"-?[0-9]{1,19}", raw_uid):
                raise InvalidFilter("user_id must be a whole number")
            uid = int(raw_uid)
            if not -(2**63) <= uid < 2**63:
                raise InvalidFilter("user_id is out of range")
        key = (range_key or "").strip() or "1h"
        if key not in RANGES:
            raise InvalidFilter(f"range must be one of {', '.join(RANGES)}")
        return cls(svc, lvl, cid, uid, check_text(text, "text"), key)

    def logql(self) -> str:
        """The LogQL query. The selector always has a matcher that is not empty-compatible
        (Loki refuses ``{service_name=~".*"}``); everything else is structured metadata,
        filtered after it."""
        selector = f"service_name={quote(self.service)}" if self.service else 'service_name=~".+"'
        query = "{" + selector + "}"
        if self.level:
            query += f" | detected_level={quote(self.level)}"
        if self.correlation_id:
            query += f" | correlation_id={quote(self.correlation_id)}"
        if self.user_id is not None:
            query += f" | user_id={quote(str(self.user_id))}"
        if self.text:
            query += f" |= {quote(self.text)}"
        return query


@dataclass(frozen=True)
class LogLine:
    """One line from Loki: its time, text and every label (index + structured metadata)."""

    at: datetime
    ts_ns: int
    line: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return self.labels.get("service_name", "")

    @property
    def level(self) -> str:
        return self.labels.get("detected_level", "")

    @property
    def level_shown(self) -> str:
        return LEVELS.get(self.level, self.level)

    @property
    def correlation_id(self) -> str | None:
        cid = self.labels.get("correlation_id")
        return cid if correlation.is_valid(cid) else None


def parse_streams(payload: Any) -> list[LogLine]:
    """Lines of a ``resultType: streams`` answer, newest first. Anything malformed raises
    ``LokiUnavailable`` (it is not Loki speaking, or not this API)."""
    try:
        data = payload["data"]
        if data["resultType"] != "streams":
            raise LokiUnavailable(f"Loki answered {str(data['resultType'])[:40]!r}, not log lines")
        lines = []
        for stream in data["result"]:
            labels = {str(k): str(v) for k, v in dict(stream.get("stream") or {}).items()}
            for ts, text, *_ in stream["values"]:
                ns = int(ts)
                lines.append(LogLine(datetime.fromtimestamp(ns / 1e9, UTC), ns, str(text), labels))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise LokiUnavailable(f"Loki's answer was not understood ({type(exc).__name__})") from None
    lines.sort(key=lambda entry: entry.ts_ns, reverse=True)
    return lines


class LokiClient:
    """Loki's query API with the settings' address, tenant and credentials."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        self.base = (settings.loki_url or "").rstrip("/")
        self.shown = _without_userinfo(self.base)  # for messages: never a password
        self.headers = {"X-Scope-OrgID": settings.loki_org_id} if settings.loki_org_id else {}
        self.auth = (
            httpx.BasicAuth(
                settings.loki_username,
                settings.loki_password.get_secret_value() if settings.loki_password else "",
            )
            if settings.loki_username
            else None
        )
        self.timeout = settings.loki_timeout_seconds
        self.transport = transport

    @property
    def configured(self) -> bool:
        return bool(self.base)

    async def query_range(
        self,
        query: str,
        start: datetime,
        end: datetime | int,
        limit: int,
        *,
        forward: bool = False,
    ) -> list[LogLine]:
        """Up to ``limit`` lines with ``start <= time < end``, newest first. ``end`` may be a
        nanosecond timestamp (a paging cursor: exact, no float rounding)."""
        if not self.configured:
            raise LokiUnavailable("Loki is not configured: set LOKI_URL (e.g. http://loki:3100)")
        end_ns = end if isinstance(end, int) else _ns(end)
        start_ns = max(_ns(start), end_ns - _ns_delta(MAX_RANGE))  # the time-range cap
        params = {
            "query": query,
            "start": str(start_ns),
            "end": str(end_ns),
            "limit": str(limit),
            "direction": "forward" if forward else "backward",
        }
        try:
            async with httpx.AsyncClient(
                timeout=self.timeout, transport=self.transport, auth=self.auth
            ) as client:
                resp = await client.get(
                    f"{self.base}/loki/api/v1/query_range", params=params, headers=self.headers
                )
        except httpx.HTTPError as exc:
            raise LokiUnavailable(
                f"Loki at {self.shown} is not reachable ({type(exc).__name__})"
            ) from None
        if resp.status_code != 200:
            detail = resp.text.strip().splitlines()[0][:300] if resp.text.strip() else ""
            raise LokiUnavailable(f"Loki answered {resp.status_code}: {detail}")
        try:
            payload = resp.json()
        except ValueError:
            raise LokiUnavailable("Loki's answer was not JSON") from None
        return parse_streams(payload)


def _without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` removed."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _ns_delta(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _ns(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _ns_delta(when - datetime(1970, 1, 1, tzinfo=UTC))
