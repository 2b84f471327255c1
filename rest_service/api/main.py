"""All API routers under one prefix."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError

from rest_service.api.routes import jobs, memory, queues

API_PREFIX = "/api/v1"


def reject_repeated_query_params(request: Request) -> None:
    """Every query parameter is a scalar: ``?status=a&status=b`` is a 422, not "last wins"."""
    counts = Counter(key for key, _ in request.query_params.multi_items())
    repeated = sorted(key for key, n in counts.items() if n > 1)
    if repeated:
        raise RequestValidationError(
            [
                {"type": "repeated", "loc": ("query", key), "msg": "given more than once"}
                for key in repeated
            ]
        )


api_router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(reject_repeated_query_params)])
api_router.include_router(jobs.router)
api_router.include_router(queues.router)
api_router.include_router(memory.router)
