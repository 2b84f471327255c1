"""The few reads the admin pages need that the API has no crud function for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from rest_service.core.db import Database
from rest_service.models import UserMemory

M = UserMemory.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class MemoryUser:
    user_id: int
    facts: int
    last_at: datetime | None


async def memory_users(db: Database, limit: int = 200) -> list[MemoryUser]:
    """Users who have facts, most recently updated first (for the user picker)."""
    last = func.max(M.c.created_at)
    stmt = (
        select(M.c.user_id, func.count(), last)
        .group_by(M.c.user_id)
        .order_by(last.desc(), M.c.user_id)
        .limit(limit)
    )
    async with db.session() as session:
        rows = (await session.execute(stmt)).all()
    return [MemoryUser(int(uid), int(n), ts) for uid, n, ts in rows]


async def memory_count(db: Database, user_id: int) -> int:
    async with db.session() as session:
        n = await session.scalar(select(func.count()).where(M.c.user_id == user_id))
    return int(n or 0)
