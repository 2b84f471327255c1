"""User memory: list/search a user's facts, get, create, delete; each counted in
``memory_operations_total``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from otel_assist.metrics.instruments import record_memory_operation
from rest_service.api.deps import DbDep, IngestAuth, ReadAuth
from rest_service.api.errors import ERROR_RESPONSES
from rest_service.core.errors import NotFoundError
from rest_service.crud import memory as crud
from rest_service.crud.memory import MemorySort
from rest_service.models import UserMemory
from rest_service.schemas import INT64_MAX, INT64_MIN, NO_NUL, MemoryCreate, MemoryPublic

router = APIRouter(prefix="/memories", tags=["memory"], responses=ERROR_RESPONSES)


@router.get("/user/{user_id}", response_model=list[MemoryPublic], dependencies=[ReadAuth])
async def list_user_memories(
    db: DbDep,
    user_id: Annotated[int, Path(ge=INT64_MIN, le=INT64_MAX)],
    q: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    sort: MemorySort = MemorySort.NEWEST,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[UserMemory]:
    """A user's facts; ``q`` is a case-insensitive substring (taken literally)."""
    try:
        rows = await crud.list_for_user(
            db, user_id, search=q, sort=sort, limit=limit, offset=offset
        )
    except Exception:
        record_memory_operation("search" if q else "retrieve", "error")
        raise
    record_memory_operation("search" if q else "retrieve")
    return rows


@router.get("/{memory_id}", response_model=MemoryPublic, dependencies=[ReadAuth])
async def get_memory(db: DbDep, memory_id: uuid.UUID) -> UserMemory:
    try:
        row = await crud.get(db, memory_id)
    except NotFoundError:
        record_memory_operation("retrieve", "error")
        raise
    record_memory_operation("retrieve")
    return row


@router.post(
    "",
    response_model=MemoryPublic,
    status_code=status.HTTP_201_CREATED,
    dependencies=[IngestAuth],
)
async def create_memory(db: DbDep, body: MemoryCreate) -> UserMemory:
    try:
        row = await crud.create(db, body)
    except Exception:
        record_memory_operation("save", "error")
        raise
    record_memory_operation("save")
    return row


@router.delete(
    "/{memory_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=[IngestAuth],
)
async def delete_memory(db: DbDep, memory_id: uuid.UUID) -> Response:
    try:
        await crud.delete(db, memory_id)
    except Exception:
        record_memory_operation("delete", "error")
        raise
    record_memory_operation("delete")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
