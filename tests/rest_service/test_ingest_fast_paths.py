"""The queue batch endpoint's fast paths keep the full models' answers.

* a body without NUL is read by ``QueueEventBatchNulFree`` (no NUL pattern, user_id a
  strict JSON integer); whatever it refuses goes through ``QueueEventBatch``, which accepts
  or words the 422 exactly as before;
* event times reach the row (and asyncpg's encoder) with ``datetime.UTC`` as tzinfo;
* API dependencies are coroutines (FastAPI would run a plain function in the thread pool);
* a pooled Postgres connection killed while it sat in the pool is replaced at checkout.
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import asyncpg
import orjson
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import text

from rest_service.api.body import nul_free
from rest_service.app import create_app
from rest_service.core.config import Settings
from rest_service.core.db import Database
from rest_service.crud import queues as queues_crud
from rest_service.schemas import QUEUE_EVENT_BATCH_NUL_FREE, QueueEventBatch, event_fields
from tests import servers
from tests.polling import poll_async
from tests.rest_service.conftest import API, Running, make_settings

BATCH = f"{API}/queue-stats/messages/batch"
GONE = "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $1"


def _event(**extra: Any) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "queue_name": "q", "direction": "push", **extra}


# ---------------------------------------------------------------- NUL-free fast model

_text = st.text(alphabet=st.sampled_from(["a", "\x00", "\\", "u", "0", '"', "é", "\n"]))
_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)


@given(_json)
def test_nul_free_never_clears_a_body_with_nul(value: Any) -> None:
    """Conservative: a JSON text whose strings hold NUL, however it is escaped, is never
    taken for NUL-free (the fast model has no NUL check of its own)."""
    has_nul = any("\x00" in s for s in _strings(value))
    for raw in (
        orjson.dumps(value),
        json.dumps(value).encode(),
        json.dumps(value, ensure_ascii=False).encode(),
    ):
        if has_nul:
            assert not nul_free(raw), raw


_user_ids = st.one_of(
    st.integers(min_value=-(2**60), max_value=2**60),
    st.sampled_from([42.0, -1.0, 1.5, True, False, "42", None, 2**53, 2**53 + 1]),
)
_events = st.lists(
    st.fixed_dictionaries(
        {"queue_name": st.sampled_from(["q", "", "a\x00b", "x" * 300])},
        optional={
            "event_id": st.sampled_from(["e1", "e\x00", "", None]) | st.uuids().map(str),
            "message_id": st.sampled_from(["m1", "m\x00", None]),
            "direction": st.sampled_from(["push", "pop", "sideways"]),
            "source": st.sampled_from(["cron", "s\x00", None]),
            "message_type": st.sampled_from(["human", "", "t\x00"]),
            "user_id": _user_ids,
            "payload": _json,
        },
    ),
    max_size=5,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_events)
def test_fast_model_accepts_a_subset_with_the_same_values(events: list[dict[str, Any]]) -> None:
    """What ``QUEUE_EVENT_BATCH_NUL_FREE`` accepts from a NUL-free body, ``QueueEventBatch``
    accepts too, with equal values (its events' dicts are the models' ``__dict__``);
    everything else goes to ``QueueEventBatch``."""
    raw = json.dumps({"events": events}).encode()
    try:
        full = QueueEventBatch.model_validate_json(raw).model_dump()
    except ValidationError:
        full = None
    if not nul_free(raw):
        return
    try:
        fast = QUEUE_EVENT_BATCH_NUL_FREE.validate_json(raw)
    except ValidationError:
        return  # the full model decides
    assert full is not None and fast == full
    full_model = QueueEventBatch.model_validate_json(raw)
    assert fast["events"] == [event_fields(e) for e in full_model.events]


async def test_batch_refusals_and_lax_integers_as_before(svc: Running) -> None:
    """Through the endpoint: NUL in a string (escaped, as JSON must) is a 422 naming the
    field; an integral float user_id is stored as an int; a boolean user_id is a 422; an
    escaped backslash followed by "u0000" is text, not NUL, and is stored."""
    nul = {"events": [_event(), _event(source="a\x00b")]}
    r = await svc.client.post(BATCH, content=json.dumps(nul), headers=_json_type())
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "events", 1, "source"]]

    boolean = {"events": [_event(user_id=True)]}
    r = await svc.client.post(BATCH, json=boolean)
    assert r.status_code == 422, r.text
    assert any(e["loc"][-1] == "user_id" for e in r.json()["detail"]), r.text

    floats = [_event(user_id=42.0, correlation_id=f"c-{uuid.uuid4().hex}") for _ in range(3)]
    r = await svc.client.post(BATCH, json={"events": floats})
    assert r.status_code == 200 and r.json()["inserted"] == 3, r.text
    listed = await svc.client.get(
        f"{API}/queue-stats/messages", params={"correlation_id": floats[0]["correlation_id"]}
    )
    assert [m["user_id"] for m in listed.json()] == [42]

    literal = _event(source="\\u0000")  # JSON text "\\u0000": a backslash, then u0000
    r = await svc.client.post(BATCH, content=json.dumps({"events": [literal]}))
    assert r.status_code == 200 and r.json()["inserted"] == 1, r.text


def map_fields(batch: QueueEventBatch) -> list[Any]:
    return [event_fields(e) for e in batch.events]


def _json_type() -> dict[str, str]:
    return {"content-type": "application/json"}


# ---------------------------------------------------------------- times in datetime.UTC


def test_event_times_are_stored_with_datetime_utc() -> None:
    """asyncpg's timestamptz encoder is cheap for ``datetime.UTC`` and calls any other
    tzinfo (pydantic-core's ``TzInfo``) three times per value: rows carry ``UTC``."""
    now = datetime.now(UTC)
    stamps = {
        "enqueued_at": (now - timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        "dequeued_at": (now - timedelta(minutes=4)).astimezone().isoformat(),
        "at": (now - timedelta(minutes=3)).replace(tzinfo=None).isoformat(),  # naive: UTC
    }
    raw = orjson.dumps({"events": [_event(direction="pop", **stamps), _event(**stamps)]})
    batch = QUEUE_EVENT_BATCH_NUL_FREE.validate_json(raw)
    rows, late = queues_crud.event_rows(batch["events"], 4096, now, now + timedelta(minutes=5))
    assert late == [] and len(rows) == 2
    for row in rows:
        for column in ("enqueued_at", "dequeued_at", "created_at"):
            value = row[queues_crud.COLUMNS.index(column)]
            assert value.tzinfo is UTC, (column, value)
    assert rows[0][queues_crud.COLUMNS.index("dequeued_at")] == datetime.fromisoformat(
        stamps["dequeued_at"]
    )


# ---------------------------------------------------------------- dependencies


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def test_api_dependencies_are_coroutines(tmp_path: Any) -> None:
    """FastAPI runs a plain-function dependency in the thread pool: one hand-off per
    dependency per request, about 5 % of the service's CPU under batch ingest."""
    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}"))
    sync = sorted(
        {
            f"{route.path}: {getattr(call, '__name__', type(call).__name__)}"
            for route in app.routes
            if isinstance(route, APIRoute) and route.path.startswith(API)
            for call in _calls(route.dependant)
            if not (
                inspect.iscoroutinefunction(call)
                or inspect.iscoroutinefunction(type(call).__call__)
            )
        }
    )
    assert sync == []


# ---------------------------------------------------------------- pooled connections


@pytest.fixture
async def pg_db(postgres: servers.Postgres) -> AsyncIterator[Database]:
    db = Database(Settings(database_url=postgres.create_database(f"fp_{uuid.uuid4().hex[:12]}")))
    try:
        yield db
    finally:
        await db.dispose()


async def test_a_pooled_connection_killed_in_the_pool_is_replaced(pg_db: Database) -> None:
    """Postgres ends a backend while its connection sits in the pool (a restart, an admin,
    an idle timeout): the next checkout finds it dead by its ping and hands out a new one,
    for SQLAlchemy sessions and for the ingest path's own use of the driver alike."""
    from rest_service.core import migrate

    await migrate.upgrade(pg_db)

    async def backend_pid() -> int:
        async with pg_db.engine.connect() as conn:
            return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())

    killer = await asyncpg.connect(pg_db.url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for use in ("session", "ingest"):
            victim = await backend_pid()  # the pool's only connection, back in the pool
            assert await killer.fetchval("SELECT pg_terminate_backend($1)", victim) is True
            await poll_async(partial(killer.fetchval, GONE, victim), 10, "the backend to end")
            if use == "session":
                async with pg_db.session() as session:
                    assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
            else:
                now = datetime.now(UTC)
                batch = QueueEventBatch.model_validate({"events": [_event()]})
                rows, _ = queues_crud.event_rows(map_fields(batch), 4096, now)
                assert await queues_crud.insert_rows(pg_db, rows) == 1
            assert await backend_pid() != victim
    finally:
        await killer.close()
