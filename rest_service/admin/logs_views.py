"""The admin Logs page (log lines read from Loki's query API, no iframe) and the
correlation page (one request's timeline across services, ``rest_service.timeline``).

Filters arrive as plain strings and go through ``LogFilter.parse``: a bad value shows a
message naming the field, never a 500 and never a query built from raw text. Loki
unreachable or not configured is a notice on the page.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from rest_service import timeline as timeline_mod
from rest_service.admin.views import KNOWN_SERVICES, SessionDep, _ctx, _db, render
from rest_service.core import ids
from rest_service.core.db import utcnow
from rest_service.loki import (
    LEVELS,
    RANGES,
    InvalidFilter,
    LogFilter,
    LogLine,
    LokiClient,
    LokiUnavailable,
)

router = APIRouter(prefix="/admin", include_in_schema=False)
PAGE_LINES = 100


def _before(raw: str | None, now: datetime, window: timedelta) -> int | None:
    """The paging cursor: a nanosecond timestamp inside the window, else an error."""
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise InvalidFilter("before must be a timestamp in nanoseconds")
    cursor = int(text)
    now_ns = int(now.timestamp()) * 10**9 + now.microsecond * 1000
    if not now_ns - int(window.total_seconds()) * 10**9 <= cursor <= now_ns:
        raise InvalidFilter("before is outside the chosen time range")
    return cursor


@router.get("/logs", name="admin_logs")
async def logs_page(
    request: Request,
    session: SessionDep,
    service: str | None = None,
    level: str | None = None,
    correlation_id: str | None = None,
    user_id: str | None = None,
    text: str | None = None,
    range: str | None = None,
    before: str | None = None,
) -> HTMLResponse:
    ctx = _ctx(request)
    now = utcnow()
    error = None
    try:
        f = LogFilter.parse(
            service=service,
            level=level,
            correlation_id=correlation_id,
            user_id=user_id,
            text=text,
            range_key=range,
        )
        cursor = _before(before, now, RANGES[f.range_key])
    except InvalidFilter as exc:
        error, f, cursor = str(exc), LogFilter(), None
    query = f.logql()
    loki = LokiClient(ctx.settings)
    lines: list[LogLine] = []
    notice = None
    has_older = False
    if error is None:
        end: datetime | int = cursor if cursor is not None else now
        try:
            found = await loki.query_range(query, now - RANGES[f.range_key], end, PAGE_LINES + 1)
            has_older = len(found) > PAGE_LINES
            lines = found[:PAGE_LINES]
        except LokiUnavailable as exc:
            notice = str(exc)
    g = ctx.grafana
    params: dict[str, Any] = {
        "service": f.service,
        "level": f.level,
        "correlation_id": f.correlation_id,
        "user_id": f.user_id,
        "text": f.text,
        "range": f.range_key,
    }
    return render(
        request,
        "logs.html",
        session,
        error=error,
        notice=notice,
        f=params,
        levels=LEVELS,
        ranges=RANGES,
        services=KNOWN_SERVICES,
        query=query,
        lines=lines,
        older=({**params, "before": lines[-1].ts_ns} if has_older and lines else None),
        paged=cursor is not None,
        explore=g.explore(g.loki_uid, "loki", query, f.range_key) if g else None,
        logs_dashboard=(
            g.logs_dashboard(f.service, f.level, f.correlation_id, f.range_key) if g else None
        ),
        metric_links=g.metric_links(f.service, f.range_key) if g else [],
        dashboards=g.dashboards(f.range_key) if g else [],
    )


@router.get("/correlation/{correlation_id}", name="admin_correlation")
async def correlation_page(
    request: Request, session: SessionDep, correlation_id: str
) -> HTMLResponse:
    ctx = _ctx(request)
    if not ids.is_valid_correlation_id(correlation_id):
        return render(
            request,
            "not_found.html",
            session,
            status_code=404,
            what=f"correlation id ({ids.CORRELATION_ID_RULE})",
            back="/admin/logs",
        )
    tl = await timeline_mod.build(correlation_id, _db(request), LokiClient(ctx.settings))
    g = ctx.grafana
    return render(
        request,
        "correlation.html",
        session,
        cid=correlation_id,
        tl=tl,
        longest=tl.longest_gap,
        levels=LEVELS,
        explore=(
            g.explore(g.loki_uid, "loki", LogFilter(correlation_id=correlation_id).logql(), "48h")
            if g
            else None
        ),
    )
