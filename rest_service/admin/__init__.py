"""Server-rendered admin pages for operators, mounted under ``/admin``.

Jobs (with tracebacks), queues (live Redis view, 24 h counts, message history), user memory
(search, sort, delete), the Logs page (lines from Loki), the Metrics page (charts from
Prometheus) and one request's timeline. Plain HTML from Jinja2 templates with autoescaping
and no JavaScript at all, so there is no front-end build step and a strict
Content-Security-Policy can forbid every script.

Include it in an app with ``app.include_router(rest_service.admin.router)``; it reads the
app's ``state.db``, ``state.settings`` and ``state.live_queues`` like the API routes do.
"""

from fastapi import APIRouter

from rest_service.admin import logs_views, metrics_pages, views

router = APIRouter()
router.include_router(views.router)
router.include_router(logs_views.router)
router.include_router(metrics_pages.router)

__all__ = ["router"]
