"""Hostile input on every ingest route, against a real rest_service (uvicorn) on SQLite and
on Postgres: never a 5xx, and a 422 names the field.

Covers the edge timestamps that once gave 500 (``9999-12-31T23:59:59-01:00`` and
``0001-01-01T00:00:00+01:00`` overflowed in ``astimezone``), the timestamp bounds
(2000-01-01 .. now + MAX_CLOCK_SKEW_SECONDS), and generated bodies with out-of-range ints,
lone surrogates, control characters, huge strings and deep JSON.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rest_service.core.ids import CORRELATION_ID_RULE
from tests import servers
from tests.rest_service.conftest import API, TOKEN

SKEW_S = 300
JOBS = f"{API}/job-executions"
QUEUE = f"{API}/queue-stats/messages"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp(f"hostile_{request.param}")
    if request.param == "sqlite":
        database_url = f"sqlite+aiosqlite:///{tmp / 'rest.sqlite3'}"
    else:
        pg: servers.Postgres = request.getfixturevalue("postgres")
        database_url = pg.create_database(f"rs_hostile_{uuid.uuid4().hex[:8]}")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "DATABASE_URL": database_url,
        "REST_SERVICE_TOKEN": TOKEN,
        "MIGRATE_ON_START": "true",
        "RETENTION_ENABLED": "false",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "AUTH_FAILURE_LIMIT": "0",
        "MAX_CLOCK_SKEW_SECONDS": str(SKEW_S),
    }
    with (
        servers.serve_rest_service(env, Path(tmp) / "rest_service.log") as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        ) as client,
    ):
        yield client


def job_event(**extra: Any) -> dict[str, Any]:
    run = uuid.uuid4().hex
    return {
        "event_id": f"{run}:started", "run_id": run, "job_id": "reminder_1",
        "job_type": "reminder", "kind": "started", "at": datetime.now(UTC).isoformat(),
        **extra,
    }  # fmt: skip


def queue_event(**extra: Any) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "queue_name": "q", "direction": "push", **extra}


def new_run(client: httpx.Client) -> str:
    r = client.post(JOBS, json={"job_id": "j", "job_type": "t"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def route_body(client: httpx.Client, route: str, field: str, value: Any) -> tuple[str, Any]:
    """(path, body) for one of the ingest routes with ``field`` set to ``value``."""
    if route == "job_batch":
        return f"{JOBS}/events", {"events": [job_event(**{field: value})]}
    if route == "job_create":
        return JOBS, {"job_id": "j", "job_type": "t", field: value}
    if route in ("start", "complete", "fail"):
        run = new_run(client)
        if route != "start":
            assert client.post(f"{JOBS}/{run}/start", json={}).status_code == 200
        body = {field: value, **({"error": "boom"} if route == "fail" else {})}
        return f"{JOBS}/{run}/{route}", body
    if route == "queue_one":
        return QUEUE, queue_event(**{field: value})
    return f"{QUEUE}/batch", {"events": [queue_event(**{field: value})]}


TIME_FIELDS = [
    ("job_batch", "at"), ("job_create", "scheduled_at"), ("start", "at"), ("complete", "at"),
    ("fail", "at"), ("queue_one", "enqueued_at"), ("queue_one", "dequeued_at"),
    ("queue_batch", "enqueued_at"), ("queue_batch", "at"),
]  # fmt: skip
EDGE_TIMES = [
    "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59.999999",
    "0001-01-01T00:00:00", "1999-12-31T23:59:59Z", "2000-01-01T00:00:00+00:01",
]  # fmt: skip


def expected_loc(route: str, field: str) -> list[Any]:
    return ["body", "events", 0, field] if route.endswith("batch") else ["body", field]


@pytest.mark.parametrize(("route", "field"), TIME_FIELDS)
def test_edge_timestamps_are_422_naming_the_field(
    live: httpx.Client, route: str, field: str
) -> None:
    future = (datetime.now(UTC) + timedelta(seconds=SKEW_S + 120)).isoformat()
    for value in [*EDGE_TIMES, future, 253402300799.0, -1]:
        path, body = route_body(live, route, field, value)
        r = live.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
        assert r.status_code == 422, (value, r.status_code, r.text)
        locs = [e["loc"] for e in r.json()["detail"]]
        assert expected_loc(route, field) in locs, (value, locs)
        # the bounds in words, whichever check refused it (the model's lower bound is
        # pydantic-core's own, whose text would be an ISO date)
        msgs = [e["msg"] for e in r.json()["detail"] if e["loc"] == expected_loc(route, field)]
        assert all("timestamp out of range" in m for m in msgs), (value, msgs)
    # Inside the bounds, with far offsets: accepted and stored as the same instant in UTC.
    # (A finish must not precede the start: complete/fail get times after "now".)
    fine = datetime.now(timezone(timedelta(hours=14))) + timedelta(seconds=30)
    values: list[Any] = [fine.isoformat(), fine.timestamp()]
    if route not in ("complete", "fail"):
        values.append("2000-01-01T00:00:00Z")
    for value in values:
        path, body = route_body(live, route, field, value)
        r = live.post(path, json=body)
        assert r.status_code < 300, (value, r.text)
        stored = r.json()
        if isinstance(value, str) and "+14:00" in value and "id" in stored:
            # a run's row comes back: the same instant, in UTC
            times = [v for k, v in stored.items() if k.endswith("_at") and v]
            want = datetime.fromisoformat(value)
            assert any(abs(datetime.fromisoformat(t) - want) < timedelta(seconds=1)
                       for t in times), stored  # fmt: skip


def test_clock_skew_is_the_setting(live: httpx.Client) -> None:
    """Within MAX_CLOCK_SKEW_SECONDS of the future: accepted; beyond: 422."""
    near = (datetime.now(UTC) + timedelta(seconds=SKEW_S - 60)).isoformat()
    far = (datetime.now(UTC) + timedelta(seconds=SKEW_S + 60)).isoformat()
    assert live.post(f"{QUEUE}/batch", json={"events": [queue_event(at=near)]}).status_code == 200
    r = live.post(f"{QUEUE}/batch", json={"events": [queue_event(), queue_event(at=far)]})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "events", 1, "at"]]
    assert f"now + {SKEW_S} s" in r.json()["detail"][0]["msg"]


# --------------------------------------------------------------------------- generated

OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda m: timezone(timedelta(minutes=m))
)
EDGE_DATETIMES = st.one_of(
    st.datetimes(timezones=OFFSETS).map(datetime.isoformat),
    st.sampled_from([datetime.min, datetime.max]).flatmap(
        lambda d: OFFSETS.map(lambda tz: d.replace(tzinfo=tz).isoformat())
    ),
    st.sampled_from(EDGE_TIMES),
    st.floats(allow_nan=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**70), max_value=2**70),
)
NASTY_INTS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 2**63 - 1, -1, 10**12 + 1]),
)
NASTY_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\udcff", "a\ud800", "\x00", "\u2028", "\x1b[2J", "../../x", ""]),
    st.integers(min_value=129, max_value=300_000).map(lambda n: "x" * n),
)
DEEP = st.integers(min_value=10, max_value=3000)
FIELDS = {
    "job_batch": ["event_id", "run_id", "job_id", "job_name", "job_type", "kind", "at",
                  "duration_ms", "user_id", "reminder_id", "error", "traceback", "result",
                  "correlation_id"],
    "job_create": ["job_id", "job_name", "job_type", "run_id", "scheduled_at", "user_id",
                   "reminder_id", "correlation_id"],
    "queue_one": ["event_id", "message_id", "queue_name", "direction", "message_type", "source",
                  "user_id", "correlation_id", "payload", "enqueued_at", "dequeued_at", "at"],
    "queue_batch": ["event_id", "message_id", "queue_name", "direction", "message_type",
                    "source", "user_id", "correlation_id", "payload", "enqueued_at",
                    "dequeued_at", "at"],
    "complete": ["at", "result", "duration_ms"],
}  # fmt: skip
DEEP_MARK = "@@deep@@"


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, list[tuple[str, Any]]]:
    route = draw(st.sampled_from(sorted(FIELDS)))
    names = draw(st.lists(st.sampled_from(FIELDS[route]), min_size=1, max_size=3, unique=True))
    values = [
        (
            name,
            draw(
                st.one_of(
                    EDGE_DATETIMES, NASTY_INTS, NASTY_TEXT, st.none(), st.booleans(),
                    DEEP.map(lambda n: f"{DEEP_MARK}{n}"),
                    st.dictionaries(NASTY_TEXT, NASTY_INTS, max_size=3),
                )
            ),
        )
        for name in names
    ]  # fmt: skip
    return route, values


def encode(body: Any) -> bytes:
    """stdlib JSON (lone surrogates escaped, big ints exact), deep values spliced in raw."""
    text = json.dumps(body)
    while DEEP_MARK in text:
        start = text.index(f'"{DEEP_MARK}')
        end = text.index('"', start + 1) + 1
        n = int(text[start + len(DEEP_MARK) + 1 : end - 1])
        text = text[:start] + "[" * n + "]" * n + text[end:]
    return text.encode()


@given(case=hostile())
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_ingest_routes_never_5xx_and_422_names_the_field(
    live: httpx.Client, case: tuple[str, list[tuple[str, Any]]]
) -> None:
    route, values = case
    path, body = route_body(live, route, values[0][0], values[0][1])
    target = body["events"][0] if "events" in body else body
    for name, value in values[1:]:
        target[name] = value
    r = live.post(path, content=encode(body), headers={"content-type": "application/json"})
    assert r.status_code < 500, (r.status_code, r.text[:500])
    assert r.status_code in (200, 201, 400, 404, 409, 413, 422), r.text[:300]
    if r.status_code == 422:
        detail = r.json()["detail"]
        assert isinstance(detail, list) and detail
        for err in detail:
            loc = err["loc"]
            assert loc[0] == "body"
            if err["type"] != "json_invalid":  # a document nested past the parser's limit
                named = [p for p in loc if isinstance(p, str) and p != "body"]
                assert named, err
                assert named[-1] in FIELDS[route] or named[-1] in ("events",), err


def test_the_job_event_kinds_are_the_wire_schemas() -> None:
    """One vocabulary: a kind the tracker ships (otel_assist.history.wire) is one rest_service
    accepts, and no other (a new status added on one side only was dead-lettered)."""
    from otel_assist.history import wire as history_wire
    from rest_service.schemas import JobEventKind

    assert {k.value for k in JobEventKind} == set(history_wire.JOB_KINDS)


@pytest.mark.parametrize("bad", ["../../api/v1/queue-stats", "..", "a b", "x" * 129, "é"])
def test_correlation_ids_outside_the_charset_are_refused_at_ingest(
    live: httpx.Client, bad: str
) -> None:
    """Ingest refuses (422 naming the field) an id that would become a link climbing out of
    the admin page, and the shipper drops such an id from the event instead of losing it."""
    r = live.post(f"{QUEUE}/batch", json={"events": [queue_event(correlation_id=bad)]})
    assert r.status_code == 422, r.text
    assert ["body", "events", 0, "correlation_id"] in [e["loc"] for e in r.json()["detail"]]
    if len(bad) <= 128:  # the rule in words (a longer one is refused for its length)
        assert [e["msg"] for e in r.json()["detail"]] == [
            f"correlation_id must be {CORRELATION_ID_RULE}"
        ], r.text
    from otel_assist.history import wire as history_wire

    cleaned = history_wire.clean("queue", queue_event(correlation_id=bad), now_ts=time.time())
    assert cleaned.event is not None and "correlation_id" not in cleaned.event
    assert "correlation_id" in {name for name, _ in cleaned.fixed}
    ok = live.post(f"{QUEUE}/batch", json={"events": [cleaned.event]})
    assert ok.status_code == 200, ok.text


# ------------------------------------------------- the models' native bounds (no server)

CORRELATION_TEXT = st.one_of(
    NASTY_TEXT,
    st.text(alphabet="abZ09._:-", max_size=130),
    st.text(alphabet=".", min_size=1, max_size=5),
    st.sampled_from(["a\n", "\na", ".\n", "a" * 128, "a" * 129, "." * 128, "é", "\uff0e"]),
)


@given(value=CORRELATION_TEXT)
@settings(max_examples=400)
def test_correlation_id_pattern_is_the_library_rule(value: str) -> None:
    """The model checks correlation_id with one pattern (no Python per value); it accepts
    exactly what the library and the admin links accept (rest_service.core.ids)."""
    from pydantic import ValidationError

    from rest_service.core.ids import is_valid_correlation_id
    from rest_service.schemas import QueueEvent

    event = {"event_id": "e", "queue_name": "q", "direction": "push", "correlation_id": value}
    try:
        QueueEvent.model_validate(event)
        accepted = True
    except ValidationError as exc:
        accepted = False
        assert [e["loc"] for e in exc.errors()] == [("correlation_id",)]
    assert accepted == is_valid_correlation_id(value), value


WIRE_TIMES = st.one_of(
    st.datetimes(timezones=st.one_of(st.none(), OFFSETS)),
    st.sampled_from([datetime.min, datetime.max]).flatmap(
        lambda d: st.one_of(st.none(), OFFSETS).map(lambda tz: d.replace(tzinfo=tz))
    ),
    st.sampled_from(
        [datetime(2000, 1, 1), datetime(1999, 12, 31, 23, 59, 59, 999999),
         datetime(2000, 1, 1, 0, 59, tzinfo=timezone(timedelta(hours=1))),
         datetime(2000, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))]
    ),
)  # fmt: skip


@given(value=WIRE_TIMES, field=st.sampled_from(["enqueued_at", "dequeued_at", "at"]))
@settings(max_examples=400)
def test_queue_event_times_are_the_wire_bounds(value: datetime, field: str) -> None:
    """A queue event's time is accepted exactly when the shipper's reference check
    (``wire.check_time``) accepts it, and stored as that instant in UTC: the lower bound
    is the model's (pydantic-core), the upper bound and the conversion ``event_rows``'."""
    from pydantic import ValidationError

    from otel_assist.history import wire as history_wire
    from rest_service.crud.queues import COLUMNS, event_rows
    from rest_service.schemas import QueueEvent, event_fields

    now = datetime.now(UTC)
    latest = now + timedelta(seconds=SKEW_S)
    try:
        reference: datetime | None = history_wire.check_time(value, SKEW_S, now)
    except ValueError:
        reference = None
    event = {"event_id": "e", "queue_name": "q", "direction": "push", field: value}
    try:
        model = QueueEvent.model_validate(event)
    except ValidationError as exc:
        assert reference is None, value
        assert [e["loc"] for e in exc.errors()] == [(field,)]
        return
    rows, late = event_rows([event_fields(model)], 4096, now, latest)
    if reference is None:
        assert late == [(0, field)] and rows == [], value
        return
    assert late == [] and len(rows) == 1
    # ``at`` is not a column of its own: it dates the row (created_at) when nothing else does
    for column in {field, "created_at"} - {"at"}:
        stored = rows[0][COLUMNS.index(column)]
        assert stored == reference and stored.utcoffset() == timedelta(0), (value, stored)


@pytest.mark.parametrize("value", [True, False, "42", "1e3"])
@pytest.mark.parametrize("field", ["user_id", "reminder_id"])
def test_integer_ids_are_json_integers(live: httpx.Client, field: str, value: object) -> None:
    """A boolean or a string where the schema says integer is refused with 422 naming the
    field (pydantic's lax mode had stored ``true`` as user_id 1); an integral number such
    as 42.0, which JSON Schema counts as an integer, is stored as 42."""
    body = {"job_id": "j-ints", "job_type": "reminder", field: value}
    resp = live.post(JOBS, json=body)
    assert resp.status_code == 422, resp.text
    assert any(e["loc"][-1] == field for e in resp.json()["detail"]), resp.text
    ok = live.post(JOBS, json={"job_id": "j-ints", "job_type": "reminder", field: 42.0})
    assert ok.status_code == 201, ok.text
    assert ok.json()[field] == 42
