"""Queue history ingest/listing, live Redis state, and user memory CRUD."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import servers
from tests.rest_service.conftest import API, Running, make_settings, start

Q = f"{API}/queue-stats"


def qev(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"e{i}",
        "message_id": f"m{i}",
        "queue_name": "to_secretary",
        "direction": "push",
        "message_type": "human",
        "source": "telegram",
        "user_id": 42,
        "correlation_id": f"c{i % 3}",
        "payload": {"text": f"hi {i}"},
        **extra,
    }


async def test_single_and_batch_ingest_are_idempotent(svc: Running) -> None:
    c = svc.client
    r = await c.post(f"{Q}/messages", json=qev(1))
    assert r.status_code == 201 and r.json()["inserted"] == 1
    r = await c.post(f"{Q}/messages", json=qev(1))
    assert r.json() == {"received": 1, "inserted": 0, "duplicates": 1}
    # without event_id the key is message_id:direction, so push and pop are two rows
    no_id = [{k: v for k, v in qev(i).items() if k != "event_id"} for i in range(2, 6)]
    pops = [{**e, "direction": "pop"} for e in no_id]
    r = await c.post(f"{Q}/messages/batch", json={"events": no_id + pops + no_id})
    assert r.json() == {"received": 12, "inserted": 8, "duplicates": 4}
    rows = (await c.get(f"{Q}/messages", params={"limit": 100})).json()
    assert len(rows) == 9
    assert orjson.loads(rows[0]["payload"])["text"].startswith("hi ")
    only = (await c.get(f"{Q}/messages", params={"message_id": "m3"})).json()
    assert sorted(x["direction"] for x in only) == ["pop", "push"]
    corr = (await c.get(f"{Q}/messages", params={"correlation_id": "c1"})).json()
    assert {x["message_id"] for x in corr} == {"m1", "m4"}


async def test_message_times_and_filters(svc: Running) -> None:
    c = svc.client
    old = datetime.now(UTC) - timedelta(hours=30)
    await c.post(
        f"{Q}/messages/batch",
        json={
            "events": [
                qev(1, enqueued_at=old.isoformat()),
                qev(2, queue_name="to_telegram", user_id=7),
                qev(
                    3,
                    direction="pop",
                    dequeued_at=datetime.now(UTC).isoformat(),
                    enqueued_at=(datetime.now(UTC) - timedelta(seconds=3)).isoformat(),
                ),
            ]
        },
    )
    day = (await c.get(f"{Q}/messages")).json()
    assert {x["event_id"] for x in day} == {"e2", "e3"}
    week = (await c.get(f"{Q}/messages", params={"hours": 48})).json()
    assert [x["event_id"] for x in week][-1] == "e1"
    assert datetime.fromisoformat(week[-1]["created_at"]) == old
    assert [
        x["event_id"]
        for x in (
            await c.get(f"{Q}/messages", params={"queue_name": "to_telegram", "user_id": 7})
        ).json()
    ] == ["e2"]
    assert (await c.get(f"{Q}/messages", params={"direction": "pop"})).json()[0]["event_id"] == "e3"


async def test_payload_over_limit_is_truncated_with_marker(svc: Running) -> None:
    big = "x" * (1024 * 1024)  # a 1 MB payload field
    r = await svc.client.post(f"{Q}/messages", json=qev(9, payload={"blob": big}))
    assert r.status_code == 201, r.text
    row = (await svc.client.get(f"{Q}/messages")).json()[0]
    assert row["payload_truncated"] is True
    assert row["payload"].endswith("bytes]") and "…[truncated " in row["payload"]
    assert len(row["payload"].encode()) < 64 * 1024 + 100


@pytest.fixture
async def redis_client(redis_server: servers.Redis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    names = ["to_secretary", "to_telegram", "to_calendar"]
    await client.delete(*names)
    yield client
    await client.delete(*names)
    await client.aclose()


async def test_current_reads_live_redis(
    sqlite_url: str, redis_server: servers.Redis, redis_client: aioredis.Redis, otel_capture: Any
) -> None:
    def envelope(age: float) -> bytes:
        return orjson.dumps(
            {
                "v": 1,
                "id": uuid.uuid4().hex,
                "enqueued_at": time.time() - age,
                "baggage": "correlation_id=abc",
                "type": "human",
                "source": "telegram",
                "user_id": 1,
                "payload": {"t": "x"},
            }
        )

    # producers LPUSH: the first pushed (oldest) ends up at index -1
    await redis_client.lpush("to_secretary", envelope(120.0))
    await redis_client.lpush("to_secretary", envelope(5.0))
    await redis_client.lpush("to_secretary", envelope(1.0))
    await redis_client.lpush("to_telegram", b"legacy plain text message")
    await redis_client.lpush("to_telegram", envelope(3.0))
    settings = make_settings(sqlite_url, redis_url=redis_server.url)
    async for svc in start(settings):
        # a queue seen only in the data is listed too
        await svc.client.post(f"{Q}/messages", json=qev(1, queue_name="to_calendar"))
        r = await svc.client.get(f"{Q}/current")
        assert r.status_code == 200, r.text
        cur = {x["queue_name"]: x for x in r.json()}
        assert cur["to_secretary"]["length"] == 3
        assert cur["to_secretary"]["oldest_message_age_seconds"] == pytest.approx(120, abs=5)
        assert cur["to_telegram"]["length"] == 2
        assert cur["to_telegram"]["oldest_message_age_seconds"] is None
        assert cur["to_telegram"]["oldest_is_legacy"] is True
        assert cur["to_calendar"] == {
            "queue_name": "to_calendar",
            "length": 0,
            "oldest_message_age_seconds": None,
            "oldest_is_legacy": False,
        }


async def test_current_is_503_when_redis_is_unreachable(sqlite_url: str, otel_capture: Any) -> None:
    settings = make_settings(sqlite_url, redis_url=f"redis://127.0.0.1:{servers.free_port()}/0")
    async for svc in start(settings):
        r = await svc.client.get(f"{Q}/current")
        assert r.status_code == 503
        assert "Redis is unreachable" in r.json()["detail"]
        assert r.headers["retry-after"]


def _memory_ops(svc: Running, operation: str, status: str = "success") -> float:
    return float(svc.capture.metric_value("memory_operations", operation=operation, status=status))


async def test_memory_crud_search_sort_and_metrics(svc: Running) -> None:
    c = svc.client
    ids = []
    for text in ["Likes green TEA", "Lives in Berlin", "100% sure about _this_", "tea at 5"]:
        r = await c.post(f"{API}/memories", json={"user_id": 5, "content": text, "source": "chat"})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    await c.post(f"{API}/memories", json={"user_id": 6, "content": "tea elsewhere"})
    newest = (await c.get(f"{API}/memories/user/5")).json()
    assert [m["id"] for m in newest] == ids[::-1]
    oldest = (await c.get(f"{API}/memories/user/5", params={"sort": "oldest"})).json()
    assert [m["id"] for m in oldest] == ids
    tea = (await c.get(f"{API}/memories/user/5", params={"q": "tea"})).json()
    assert {m["content"] for m in tea} == {"Likes green TEA", "tea at 5"}
    # LIKE wildcards and SQL in the search are taken literally
    assert [
        m["content"] for m in (await c.get(f"{API}/memories/user/5", params={"q": "100%"})).json()
    ] == ["100% sure about _this_"]
    assert (await c.get(f"{API}/memories/user/5", params={"q": "_"})).json()[0]["content"] == (
        "100% sure about _this_"
    )
    assert (
        await c.get(
            f"{API}/memories/user/5", params={"q": "' OR 1=1; DROP TABLE user_memories; --"}
        )
    ).json() == []
    page = (await c.get(f"{API}/memories/user/5", params={"limit": 2, "offset": 2})).json()
    assert [m["id"] for m in page] == ids[::-1][2:]
    got = await c.get(f"{API}/memories/{ids[0]}")
    assert got.status_code == 200 and got.json()["source"] == "chat"
    r = await c.delete(f"{API}/memories/{ids[0]}")
    assert r.status_code == 204 and r.content == b""
    assert (await c.get(f"{API}/memories/{ids[0]}")).status_code == 404
    r = await c.delete(f"{API}/memories/{ids[0]}")
    assert r.status_code == 404
    assert _memory_ops(svc, "save") == 5
    assert _memory_ops(svc, "delete") == 1
    assert _memory_ops(svc, "delete", "error") == 1
    assert _memory_ops(svc, "search") == 4
    assert _memory_ops(svc, "retrieve") == 4  # two sorts, one page, one get
    assert _memory_ops(svc, "retrieve", "error") == 1  # the get after delete


async def test_concurrent_duplicate_falls_back_to_on_conflict(
    postgres: servers.Postgres, otel_capture: Any
) -> None:
    """An event stored by another transaction between the fast path's lookup and its COPY:
    the COPY hits the unique index, and the ON CONFLICT path stores the rest exactly once."""
    import asyncio

    import asyncpg

    from rest_service.crud import queues as crud
    from rest_service.schemas import QueueEvent

    url = postgres.create_database(f"rs_{uuid.uuid4().hex[:10]}")
    async for svc in start(make_settings(url)):
        # with an enqueued_at, as the shipper sends them: both transactions derive the same
        # created_at, so they meet on the (event_id, created_at) unique index (events
        # without a timestamp meet on an advisory lock instead: tests/rest_service/
        # test_partitions.py)
        stamp = datetime.now(UTC).isoformat()
        events = [
            QueueEvent.model_validate(qev(i, enqueued_at=stamp)) for i in range(100)
        ]  # > COPY_MIN_ROWS
        other = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            tx = other.transaction()
            await tx.start()
            row = crud.event_to_row(events[5], 65536, datetime.now(UTC))
            await other.execute(
                "INSERT INTO queue_message_logs (id, event_id, queue_name, direction,"
                " message_type, payload_truncated, created_at) VALUES ($1, $2, $3, $4, $5,"
                " false, $6)",
                uuid.uuid4(),
                row[1],  # event_id (row[0] is the id)
                row[3],
                row[4],
                row[5],
                row[-1],
            )
            ingest = asyncio.create_task(crud.ingest_events(svc.db, events, 65536))
            await asyncio.sleep(1.0)  # the fast path is now blocked on the unique index
            assert not ingest.done()
            await tx.commit()
            result = await asyncio.wait_for(ingest, 30)
        finally:
            await other.close()
        assert result.inserted == 99 and result.duplicates == 1
        async with svc.db.session() as s:
            from sqlalchemy import text

            n = (await s.execute(text("SELECT count(*) FROM queue_message_logs"))).scalar()
            rolled = (await s.execute(text("SELECT sum(count) FROM queue_message_hourly"))).scalar()
        assert n == 100 and rolled == 99  # the foreign insert bypassed the rollup
        again = await crud.ingest_events(svc.db, events, 65536)
        assert again.inserted == 0


async def test_longest_message_id_without_event_id_is_stored(svc: Running) -> None:
    event = {k: v for k, v in qev(1).items() if k != "event_id"}
    event["message_id"] = "m" * 128
    r = await svc.client.post(f"{Q}/messages", json=event)
    assert r.status_code == 201 and r.json()["inserted"] == 1, r.text
    r = await svc.client.post(f"{Q}/messages", json=event)
    assert r.json()["duplicates"] == 1


# ------------------------------------------- ids in admin links (issue 10 §7)

HOSTILE_IDS = [
    "../../api/v1/queue-stats",
    "..",
    ".",
    "a/b",
    "x?y=1#z",
    "%2e%2e%2fapi",
    "<script>alert(1)</script>",
    "sp ace",
    "ok-id_1.2:3",
]


async def _login(client: Any) -> None:
    import re

    from tests.rest_service.conftest import TOKEN

    form = await client.get("/admin/login")
    nonce = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
    assert nonce, form.text
    r = await client.post(
        "/admin/login", data={"token": TOKEN, "login_csrf": nonce.group(1), "next": "/admin"}
    )
    assert r.status_code == 303, r.text


def _hrefs(html: str) -> list[str]:
    import re

    return re.findall(r'href="([^"]*)"', html)


async def test_admin_links_encode_ids_and_skip_ids_the_correlation_page_refuses(
    svc: Running,
) -> None:
    """Ids stored before ingest checked the charset (or by an older version) never become
    a path that climbs out of /admin/correlation/; valid ones link to their page."""
    from rest_service.crud import queues as queues_crud
    from rest_service.models import JobExecution

    c = svc.client
    now = datetime.now(UTC)
    # stored directly, as rows written before ingest checked the charset would be
    rows = [
        (uuid.uuid4().hex, f"cid-{i}", f"m{i}", "to_secretary", "push", "human", None, None,
         cid, None, False, now, None, now)
        for i, cid in enumerate(HOSTILE_IDS)
    ]  # fmt: skip
    assert await queues_crud.insert_rows(svc.db, rows) == len(HOSTILE_IDS)
    async with svc.db.session() as s, s.begin():
        s.add_all(
            JobExecution(
                run_id=f"run-{i}",
                job_id="j",
                job_name="j",
                job_type="reminder",
                status="completed",
                correlation_id=cid,
                created_at=now,
                updated_at=now,
            )
            for i, cid in enumerate(HOSTILE_IDS)
        )
    await _login(c)
    for path in ("/admin/queues", "/admin/jobs"):
        page = await c.get(path)
        assert page.status_code == 200
        links = [h for h in _hrefs(page.text) if h.startswith("/admin/correlation/")]
        for href in links:
            segment = href.removeprefix("/admin/correlation/")
            assert "/" not in segment and "?" not in segment and "#" not in segment, href
            assert segment.strip(".") and segment.replace("%2E", ".").strip("."), href
        if path == "/admin/queues":
            assert "/admin/correlation/ok-id_1.2%3A3" in links
            assert all(".." not in h.split("?")[0] for h in _hrefs(page.text)), links
            assert "../../api/v1/queue-stats" in page.text  # shown as text, not a link
    # issue 17 §3: no upcoming-run rows exist, so the jobs filter offers no "scheduled"
    jobs_page = await c.get("/admin/jobs")
    assert '<option value="scheduled"' not in jobs_page.text
    assert '<option value="completed"' in jobs_page.text
    ok = await c.get("/admin/correlation/ok-id_1.2%3A3")
    assert ok.status_code == 200 and "ok-id_1.2:3" in ok.text
    for cid in ("%2E%2E", "sp%20ace", "x%3Fy"):
        bad = await c.get(f"/admin/correlation/{cid}")
        assert bad.status_code == 404 and "not only dots" in bad.text, cid
    for cid in ("a%2Fb", "..%2F..%2Fapi"):  # a decoded '/' matches no admin route at all
        assert (await c.get(f"/admin/correlation/{cid}")).status_code == 404


@given(value=st.text(max_size=200))
@settings(max_examples=300)
def test_path_segment_is_one_segment_and_round_trips(value: str) -> None:
    from urllib.parse import unquote

    from rest_service.core.ids import is_valid_correlation_id, path_segment

    seg = path_segment(value)
    assert all((ch.isalnum() and ch.isascii()) or ch in "-._~%" for ch in seg), seg
    assert unquote(seg, errors="surrogatepass") == value
    if is_valid_correlation_id(value):
        assert seg == value.replace(":", "%3A")  # nothing else in the charset needs encoding
        assert value.strip(".")


@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "queue",
                "user_id",
                "correlation_id",
                "direction",
                "hours",
                "page",
                "job_type",
                "status",
            ]
        ),
        st.one_of(
            st.text(max_size=200),
            st.sampled_from(["\udcff", "\x00", "../..", "-1", "99999999999999999999999"]),
            st.integers(min_value=-(2**70), max_value=2**70).map(str),
        ),
        max_size=4,
    ),
    cid=st.one_of(st.text(max_size=150), st.sampled_from(["\udcff", "..", "a/b", "%"])),
)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
async def test_admin_queue_pages_never_5xx_on_hostile_input(
    svc: Running, params: dict[str, str], cid: str
) -> None:
    from urllib.parse import quote

    c = svc.client
    if "admin_session" not in str(c.cookies) and not c.cookies:
        await _login(c)
    query = "&".join(f"{k}={quote(v, safe='', errors='surrogatepass')}" for k, v in params.items())
    for path in ("/admin/queues", "/admin/jobs"):
        page = await c.get(f"{path}?{query}")
        assert page.status_code == 200, (path, params, page.text[:300])
    r = await c.get("/admin/correlation/" + quote(cid, safe="", errors="surrogatepass"))
    # 303: httpx itself resolves "/.." before sending; 307: a trailing slash
    assert r.status_code in (200, 303, 307, 404), (cid, r.status_code)
