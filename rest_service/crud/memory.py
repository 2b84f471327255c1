"""User memory: the facts the assistant keeps about a user."""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import func, select

from rest_service.core.db import Database, utcnow
from rest_service.core.errors import NotFoundError
from rest_service.models import UserMemory
from rest_service.schemas import MemoryCreate

M = UserMemory.__table__  # type: ignore[attr-defined]


class MemorySort(StrEnum):
    NEWEST = "newest"
    OLDEST = "oldest"


def _like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` literally (``%``, ``_`` and ``\\`` escaped)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


async def list_for_user(
    db: Database,
    user_id: int,
    *,
    search: str | None = None,
    sort: MemorySort = MemorySort.NEWEST,
    limit: int = 100,
    offset: int = 0,
) -> list[UserMemory]:
    """A user's facts, optionally filtered by a case-insensitive substring."""
    stmt = select(UserMemory).where(M.c.user_id == user_id)
    if search:
        stmt = stmt.where(func.lower(M.c.content).like(_like_pattern(search), escape="\\"))
    if sort is MemorySort.NEWEST:
        stmt = stmt.order_by(M.c.created_at.desc(), M.c.id.desc())
    else:
        stmt = stmt.order_by(M.c.created_at.asc(), M.c.id.asc())
    stmt = stmt.offset(offset).limit(limit)
    async with db.session() as session:
        return list((await session.execute(stmt)).scalars().all())


async def get(db: Database, memory_id: uuid.UUID) -> UserMemory:
    async with db.session() as session:
        row = await session.get(UserMemory, memory_id)
    if row is None:
        raise NotFoundError(f"memory {memory_id} not found")
    return row


async def create(db: Database, body: MemoryCreate) -> UserMemory:
    now = utcnow()
    row = UserMemory(
        user_id=body.user_id,
        content=body.content,
        source=body.source,
        created_at=now,
        updated_at=now,
    )
    async with db.write_lock(), db.session() as session, session.begin():
        session.add(row)
    return row


async def delete(db: Database, memory_id: uuid.UUID) -> None:
    async with db.write_lock(), db.session() as session, session.begin():
        result = await session.execute(M.delete().where(M.c.id == memory_id))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFoundError(f"memory {memory_id} not found")
