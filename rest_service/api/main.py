"""All API routers under one prefix."""

from __future__ import annotations

from fastapi import APIRouter

from rest_service.api.routes import jobs, memory, queues

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX)
api_router.include_router(jobs.router)
api_router.include_router(queues.router)
api_router.include_router(memory.router)
