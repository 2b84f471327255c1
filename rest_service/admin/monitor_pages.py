"""The admin Monitors page: each cron monitor's state, schedule in words, next expected run,
last check-in (linking its correlation_id's timeline) and recent runs; pause and resume.

Kept apart from ``views.py`` (one concern per module); it reuses that module's session,
rendering and CSRF rules, so pause/resume is protected exactly like the memory delete: a
POST with the session's CSRF token from our own origin, and an ingest-scope session.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rest_service.admin.session import check_csrf
from rest_service.admin.views import SessionDep, render
from rest_service.core.db import Database
from rest_service.core.errors import NotFoundError
from rest_service.crud import monitors as crud

router = APIRouter(prefix="/admin", include_in_schema=False)

#: Badge colour per monitor state (the stylesheet's ok / warn / bad / idle classes).
STATE_CLASS = {"ok": "ok", "late": "warn", "missed": "bad", "failing": "bad", "paused": "idle"}
RECENT_RUNS = 8


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


@router.get("/monitors", name="admin_monitors")
async def monitors_page(
    request: Request, session: SessionDep, changed: str | None = None
) -> HTMLResponse:
    db = _db(request)
    now = await crud.db_now(db)
    rows = []
    for row in await crud.list_rows(db):
        public = await crud.public(db, row, now)
        runs = await crud.recent_runs(db, row.slug, RECENT_RUNS)
        rows.append({"m": public, "runs": runs, "state_class": STATE_CLASS[public.state.value]})
    return render(
        request,
        "monitors.html",
        session,
        monitors=rows,
        changed=changed if changed in ("paused", "resumed") else None,
    )


async def _set_enabled(
    request: Request, session: SessionDep, slug: str, csrf_token: str, enabled: bool
) -> Response:
    check_csrf(request, session, csrf_token)
    if not session.can_write:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "this session's token is read-only; pausing or resuming needs ingest",
        )
    try:
        await crud.set_enabled(_db(request), slug[:128], enabled)
    except NotFoundError:
        return render(
            request,
            "not_found.html",
            session,
            status_code=404,
            what="monitor",
            back="/admin/monitors",
        )
    changed = "resumed" if enabled else "paused"
    return RedirectResponse(f"/admin/monitors?changed={changed}", status.HTTP_303_SEE_OTHER)


@router.post("/monitors/{slug}/pause")
async def pause(
    request: Request,
    session: SessionDep,
    slug: str,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    return await _set_enabled(request, session, slug, csrf_token, False)


@router.post("/monitors/{slug}/resume")
async def resume(
    request: Request,
    session: SessionDep,
    slug: str,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    return await _set_enabled(request, session, slug, csrf_token, True)
