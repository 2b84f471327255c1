"""The ``/admin`` router: login/logout, Jobs, Queues, User memory, Logs & metrics, and the
correlation view that ties a correlation_id's queue messages and job runs together.

Query parameters arrive as plain strings and are parsed here, so a bad filter shows a
message on the page instead of a JSON 422. All data access goes through rest_service's
crud functions; nothing here writes SQL except ``queries.py``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from jinja2.filters import do_urlencode

from otel_assist.metrics.instruments import record_memory_operation
from rest_service.admin import grafana, presentation, queries
from rest_service.admin.session import (
    AdminSession,
    SessionManager,
    check_csrf,
    safe_next,
    same_origin,
)
from rest_service.admin.settings import AdminSettings
from rest_service.core import ids
from rest_service.core.auth_limit import record_failure, refuse_if_blocked
from rest_service.core.config import Settings
from rest_service.core.db import Database, utcnow
from rest_service.core.errors import NotFoundError, UnavailableError
from rest_service.crud import jobs as jobs_crud
from rest_service.crud import memory as memory_crud
from rest_service.crud import queues as queues_crud
from rest_service.live_queues import LiveQueues
from rest_service.models import JobStatus

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 50
HOUR_CHOICES = (1, 6, 24, 72, 168)
MAX_TEXT_FILTER = 128
#: Queue cards on the Queues page: the configured queues, then the busiest others; the
#: rest are counted ("N more") and reachable through the queue filter.
MAX_QUEUE_CARDS = 12
#: ... counted up to this many (one index probe each), then "N+ more".
MAX_QUEUES_COUNTED = 1000

#: No script may run on these pages: they need none, and this turns any escaping mistake
#: into a blocked script rather than an XSS.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    duration=presentation.fmt_duration_ms,
    age=presentation.fmt_age,
    when=presentation.fmt_time,
    status_class=presentation.status_class,
    pretty=presentation.pretty_payload,
)


def link(path: str, **params: Any) -> str:
    """``path?query`` with empty parameters left out (templates build filter links)."""
    kept = {k: v for k, v in params.items() if v is not None and v != ""}
    return f"{path}?{urlencode(kept, errors='surrogatepass')}" if kept else path


def correlation_href(cid: object) -> str | None:
    """The correlation page of ``cid``, or None for an id that page would refuse (stored
    before ingest checked the charset): such ids are shown as text, never as a link."""
    if not ids.is_valid_correlation_id(cid):
        return None
    return "/admin/correlation/" + ids.path_segment(cid)


def _urlencode(value: Any) -> str:
    """Jinja's ``urlencode``, except that a string is encoded as one path segment (``/``
    too): the templates put ids into paths with it, where Jinja's own keeps ``/``."""
    if isinstance(value, str):
        return ids.path_segment(value)
    return str(do_urlencode(value))


_env.globals["link"] = link
_env.globals["correlation_href"] = correlation_href
_env.filters["urlencode"] = _urlencode

router = APIRouter(prefix="/admin", include_in_schema=False)


# --------------------------------------------------------------------------- plumbing


@dataclass
class AdminContext:
    """Per-app admin state, built on the first admin request from the app's settings."""

    settings: Settings
    admin: AdminSettings
    sessions: SessionManager
    grafana: grafana.Grafana | None


def _ctx(request: Request) -> AdminContext:
    ctx: AdminContext | None = getattr(request.app.state, "admin_ctx", None)
    if ctx is None:
        settings: Settings = request.app.state.settings
        admin = AdminSettings.from_settings(settings)
        graf = (
            grafana.Grafana(
                admin.grafana_url, admin.loki_datasource_uid, admin.prometheus_datasource_uid
            )
            if admin.grafana_url
            else None
        )
        ctx = AdminContext(settings, admin, SessionManager(settings, admin), graf)
        request.app.state.admin_ctx = ctx
    return ctx


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def require_session(request: Request) -> AdminSession:
    """The logged-in session, else a 303 to the login page (which comes back here)."""
    session = _ctx(request).sessions.load(request)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = request.url_for("admin_login").include_query_params(next=safe_next(target))
        raise HTTPException(status.HTTP_303_SEE_OTHER, "login required", {"Location": str(login)})
    return session


SessionDep = Annotated[AdminSession, Depends(require_session)]


def render(
    request: Request,
    template: str,
    session: AdminSession | None,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    body = _env.get_template(template).render(
        request=request,
        session=session,
        nav=template.split(".")[0].split("_")[0],
        grafana_configured=_ctx(request).grafana is not None,
        **values,
    )
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)


class FilterError(ValueError):
    """A filter value the page cannot use; shown to the operator as a message."""


def _hours(raw: str | None, default: int = 24) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise FilterError("period must be a whole number of hours") from None
    if not 1 <= value <= 168:
        raise FilterError("period must be between 1 and 168 hours")
    return value


def _int(raw: str | None, what: str) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise FilterError(f"{what} must be a whole number") from None
    if not -(2**63) <= value < 2**63:
        raise FilterError(f"{what} is out of range")
    return value


def _text(raw: str | None, what: str) -> str | None:
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip()
    if len(value) > MAX_TEXT_FILTER or "\x00" in value:
        raise FilterError(f"{what} is too long or contains invalid characters")
    return value


def _page(raw: str | None) -> int:
    value = _int(raw, "page") or 1
    return max(1, min(value, 10_000))


# --------------------------------------------------------------------------- login


@router.get("", include_in_schema=False)
async def admin_root() -> RedirectResponse:
    return RedirectResponse("/admin/jobs", status.HTTP_303_SEE_OTHER)


@router.get("/login", name="admin_login")
async def login_form(request: Request, next: str | None = None) -> Response:
    ctx = _ctx(request)
    nonce = ctx.sessions.login_nonce(request)
    response = render(
        request,
        "login.html",
        None,
        next=safe_next(next),
        error=None,
        auth_enabled=ctx.settings.auth_enabled,
        nonce=nonce,
    )
    ctx.sessions.set_login_nonce(request, response, nonce)
    return response


@router.post("/login")
async def login(
    request: Request,
    token: Annotated[str, Form(max_length=4096)] = "",
    login_csrf: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    ctx = _ctx(request)
    if not same_origin(request) or not ctx.sessions.login_nonce_ok(request, login_csrf):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "login form expired or cross-site; reload the login page"
        )
    refuse_if_blocked(request)
    scopes = ctx.sessions.scopes_for_token(token.strip())
    if "read" not in scopes:
        if not scopes:  # a guess, not a valid token lacking the read scope
            record_failure(request)
        return render(
            request,
            "login.html",
            None,
            status_code=status.HTTP_401_UNAUTHORIZED,
            next=safe_next(next),
            error="That token is not valid for rest_service.",
            auth_enabled=ctx.settings.auth_enabled,
            nonce=login_csrf,
        )
    redirect = RedirectResponse(safe_next(next), status.HTTP_303_SEE_OTHER)
    ctx.sessions.issue(redirect, request, scopes)
    return redirect


@router.post("/logout")
async def logout(
    request: Request,
    session: SessionDep,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    check_csrf(request, session, csrf_token)
    response = RedirectResponse("/admin/login", status.HTTP_303_SEE_OTHER)
    _ctx(request).sessions.clear(response)
    return response


@router.get("/static/admin.css", name="admin_css")
async def stylesheet() -> Response:
    css = (HERE / "static" / "admin.css").read_bytes()
    return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=300"})


# --------------------------------------------------------------------------- jobs


@router.get("/jobs", name="admin_jobs")
async def jobs_page(
    request: Request,
    session: SessionDep,
    job_type: str | None = None,
    status_filter: Annotated[str | None, Query(alias="status")] = None,
    hours: str | None = None,
    correlation_id: str | None = None,
    page: str | None = None,
) -> HTMLResponse:
    ctx = _ctx(request)
    db = _db(request)
    error = None
    rows: list[Any] = []
    has_next = False
    try:
        f_hours = _hours(hours)
        f_type = _text(job_type, "job type")
        f_cid = _text(correlation_id, "correlation_id")
        f_status = _text(status_filter, "status")
        if f_status is not None and f_status not in {s.value for s in JobStatus}:
            raise FilterError(f"unknown status {f_status!r}")
        f_page = _page(page)
    except FilterError as exc:
        error = str(exc)
        f_hours, f_type, f_cid, f_status, f_page = 24, None, None, None, 1
    stats = await jobs_crud.job_stats(
        db,
        hours=24,
        stuck_after_minutes=ctx.settings.stuck_after_minutes,
        exact_percentile_limit=ctx.settings.exact_percentile_limit,
    )
    if error is None:
        found = await jobs_crud.list_executions(
            db,
            since=utcnow() - timedelta(hours=f_hours),
            job_type=f_type,
            status=f_status,
            correlation_id=f_cid,
            limit=PAGE_SIZE + 1,
            offset=(f_page - 1) * PAGE_SIZE,
        )
        has_next = len(found) > PAGE_SIZE
        rows = found[:PAGE_SIZE]
    job_types = sorted(set(stats.by_type) | ({f_type} if f_type else set()))
    return render(
        request,
        "jobs.html",
        session,
        stats=stats,
        rows=rows,
        error=error,
        job_types=job_types,
        # no "scheduled" choice: the library creates a run's row when it starts, never for
        # an upcoming run, so that filter would always be empty (issue 17 §3); the next
        # expected runs belong to the cron monitors. API clients that create runs ahead
        # with POST /job-executions still filter them with ?status=scheduled.
        statuses=[s.value for s in JobStatus if s is not JobStatus.SCHEDULED],
        hour_choices=HOUR_CHOICES,
        f={"job_type": f_type, "status": f_status, "hours": f_hours, "correlation_id": f_cid},
        page=f_page,
        has_next=has_next,
    )


@router.get("/jobs/{execution_id}", name="admin_job")
async def job_detail(request: Request, session: SessionDep, execution_id: str) -> HTMLResponse:
    try:
        job = await jobs_crud.get_execution(_db(request), uuid.UUID(execution_id))
    except (ValueError, NotFoundError):
        return render(
            request,
            "not_found.html",
            session,
            status_code=404,
            what="job execution",
            back="/admin/jobs",
        )
    return render(request, "job_detail.html", session, job=job)


# --------------------------------------------------------------------------- queues


@router.get("/queues", name="admin_queues")
async def queues_page(
    request: Request,
    session: SessionDep,
    queue: str | None = None,
    user_id: str | None = None,
    correlation_id: str | None = None,
    direction: str | None = None,
    hours: str | None = None,
    page: str | None = None,
) -> HTMLResponse:
    ctx = _ctx(request)
    db = _db(request)
    error = None
    try:
        f_hours = _hours(hours)
        f_queue = _text(queue, "queue")
        f_user = _int(user_id, "user_id")
        f_cid = _text(correlation_id, "correlation_id")
        f_dir = _text(direction, "direction")
        if f_dir is not None and f_dir not in ("push", "pop"):
            raise FilterError("direction must be push or pop")
        f_page = _page(page)
    except FilterError as exc:
        error = str(exc)
        f_hours, f_queue, f_user, f_cid, f_dir, f_page = 24, None, None, None, None, 1
    async with db.session() as dbs:
        names = await queues_crud.busiest_queue_names(
            dbs, ctx.settings.queue_names, MAX_QUEUE_CARDS, utcnow()
        )
        stats = await queues_crud.stats_for(dbs, names, utcnow())
        total_queues, capped = await queues_crud.count_queue_names(
            dbs, ctx.settings.queue_names, MAX_QUEUES_COUNTED
        )
    live_error = None
    live: list[Any] = []
    live_queues: LiveQueues = request.app.state.live_queues
    try:
        live = await live_queues.current(names)
    except UnavailableError as exc:
        live_error = str(exc)
    charts = [
        (
            s.queue_name,
            presentation.bar_chart("by type", s.by_type),
            presentation.bar_chart("by source", s.by_source),
        )
        for s in stats
    ]
    choices = names if f_queue is None or f_queue in names else [*names, f_queue]
    rows: list[Any] = []
    has_next = False
    if error is None:
        found = await queues_crud.list_messages(
            db,
            since=utcnow() - timedelta(hours=f_hours),
            queue_name=f_queue,
            user_id=f_user,
            correlation_id=f_cid,
            direction=f_dir,
            limit=PAGE_SIZE + 1,
            offset=(f_page - 1) * PAGE_SIZE,
        )
        has_next = len(found) > PAGE_SIZE
        rows = found[:PAGE_SIZE]
    return render(
        request,
        "queues.html",
        session,
        live=live,
        live_error=live_error,
        stats=stats,
        charts=charts,
        rows=rows,
        error=error,
        queue_names=choices,
        more_queues=max(0, total_queues - len(names)),
        more_queues_capped=capped,
        hour_choices=HOUR_CHOICES,
        f={
            "queue": f_queue,
            "user_id": f_user,
            "correlation_id": f_cid,
            "direction": f_dir,
            "hours": f_hours,
        },
        page=f_page,
        has_next=has_next,
    )


# The correlation page (one request's timeline) is in logs_views.py.


# --------------------------------------------------------------------------- memory


@router.get("/memory", name="admin_memory")
async def memory_page(
    request: Request,
    session: SessionDep,
    user_id: str | None = None,
    q: str | None = None,
    sort: str | None = None,
    page: str | None = None,
    deleted: str | None = None,
) -> HTMLResponse:
    db = _db(request)
    error = None
    f_user: int | None = None
    f_q: str | None = None
    f_sort = memory_crud.MemorySort.NEWEST
    f_page = 1
    try:
        f_user = _int(user_id, "user_id")
        f_q = _text(q, "search")
        if sort:
            try:
                f_sort = memory_crud.MemorySort(sort)
            except ValueError:
                raise FilterError("sort must be newest or oldest") from None
        f_page = _page(page)
    except FilterError as exc:
        error = str(exc)
    users = await queries.memory_users(db)
    facts: list[Any] = []
    total = 0
    has_next = False
    if f_user is not None and error is None:
        found = await memory_crud.list_for_user(
            db,
            f_user,
            search=f_q,
            sort=f_sort,
            limit=PAGE_SIZE + 1,
            offset=(f_page - 1) * PAGE_SIZE,
        )
        has_next = len(found) > PAGE_SIZE
        facts = found[:PAGE_SIZE]
        total = await queries.memory_count(db, f_user)
        record_memory_operation("search" if f_q else "retrieve")
    return render(
        request,
        "memory.html",
        session,
        users=users,
        facts=facts,
        total=total,
        error=error,
        deleted=deleted == "1",
        f={"user_id": f_user, "q": f_q, "sort": f_sort.value},
        page=f_page,
        has_next=has_next,
    )


@router.get("/memory/{memory_id}/delete", name="admin_memory_confirm")
async def memory_confirm(request: Request, session: SessionDep, memory_id: str) -> HTMLResponse:
    try:
        fact = await memory_crud.get(_db(request), uuid.UUID(memory_id))
    except (ValueError, NotFoundError):
        return render(
            request, "not_found.html", session, status_code=404, what="fact", back="/admin/memory"
        )
    return render(request, "memory_confirm.html", session, fact=fact)


@router.post("/memory/{memory_id}/delete")
async def memory_delete(
    request: Request,
    session: SessionDep,
    memory_id: str,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    check_csrf(request, session, csrf_token)
    if not session.can_write:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "this session's token is read-only; deleting needs ingest"
        )
    db = _db(request)
    try:
        mid = uuid.UUID(memory_id)
        fact = await memory_crud.get(db, mid)
        await memory_crud.delete(db, mid)
    except (ValueError, NotFoundError):
        record_memory_operation("delete", "error")
        return render(
            request, "not_found.html", session, status_code=404, what="fact", back="/admin/memory"
        )
    record_memory_operation("delete")
    target = request.url_for("admin_memory").include_query_params(user_id=fact.user_id, deleted="1")
    return RedirectResponse(str(target.path) + "?" + target.query, status.HTTP_303_SEE_OTHER)


# --------------------------------------------------------------------------- services


# The Logs page (lines read from Loki) is in logs_views.py.

KNOWN_SERVICES = (
    "rest_service",
    "assistant_service",
    "telegram_bot_service",
    "cron_service",
    "rag_service",
    "google_calendar_service",
    "otel-assist-demo",
)


# --------------------------------------------------------------------------- fallbacks


async def unknown_admin_page(request: Request) -> Response:
    """Any other /admin path: the same styled page as a missing job or fact, not raw JSON.

    Registered by the app after this router, so it can never shadow a real admin page."""
    if not request.path_params.get("path"):  # /admin/ is the admin's home
        return RedirectResponse("/admin/jobs", status.HTTP_303_SEE_OTHER)
    return render(request, "not_found.html", None, status_code=404, what="page", back="/admin")
