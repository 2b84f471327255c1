"""All API routers under one prefix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from rest_service.api.routes import jobs, memory, monitors, queues

API_PREFIX = "/api/v1"


async def reject_repeated_query_params(request: Request) -> None:
    """Every query parameter is a scalar: ``?status=a&status=b`` is a 422, not "last wins".
    ``async``, like every dependency of the API (see ``api/deps.py``): a plain function
    would run in the thread pool, a hand-off per request."""
    counts = Counter(key for key, _ in request.query_params.multi_items())
    repeated = sorted(key for key, n in counts.items() if n > 1)
    if repeated:
        raise RequestValidationError(
            [
                {"type": "repeated", "loc": ("query", key), "msg": "given more than once"}
                for key in repeated
            ]
        )


def _query_aliases(dependant: Dependant) -> Iterator[str]:
    """Query parameter names of an endpoint and of every dependency it pulls in."""
    yield from (param.alias for param in dependant.query_params)
    for sub in dependant.dependencies:
        yield from _query_aliases(sub)


def _declared_query_names(route: APIRoute) -> frozenset[str]:
    """Computed once per route and kept on it (routes are not hashable, and a cache keyed
    by ``id()`` could hand one route's names to another created at the same address)."""
    names: frozenset[str] | None = getattr(route, "_otel_assist_query_names", None)
    if names is None:
        names = frozenset(_query_aliases(route.dependant))
        route._otel_assist_query_names = names  # type: ignore[attr-defined]
    return names


async def reject_unknown_query_params(request: Request) -> None:
    """A misspelt filter (``?job_typ=x``) is a 422 naming it, not a silently unfiltered
    list."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params) - _declared_query_names(route))
    if unknown:
        raise RequestValidationError(
            [
                {"type": "unknown", "loc": ("query", key), "msg": "unknown query parameter"}
                for key in unknown
            ]
        )


api_router = APIRouter(
    prefix=API_PREFIX,
    dependencies=[Depends(reject_repeated_query_params), Depends(reject_unknown_query_params)],
)
api_router.include_router(jobs.router)
api_router.include_router(queues.router)
api_router.include_router(memory.router)
api_router.include_router(monitors.router)  # cron monitors (issue 15)
