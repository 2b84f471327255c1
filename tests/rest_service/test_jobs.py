"""Job executions: strict lifecycle calls, order-independent idempotent batch events."""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rest_service.crud.jobs import merge_event
from rest_service.models import JobStatus
from rest_service.schemas import JobEvent, JobEventKind
from tests.rest_service.conftest import API, Running

JOBS = f"{API}/job-executions"


def ev(run: str, kind: str, at: datetime, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"{run}-{kind}-{n}",
        "run_id": run,
        "job_id": f"job-{run}",
        "job_name": "Reminder",
        "job_type": "reminder",
        "kind": kind,
        "at": at.isoformat(),
        **extra,
    }


async def test_lifecycle_create_start_complete(svc: Running) -> None:
    c = svc.client
    r = await c.post(JOBS, json={"job_id": "reminder_1", "job_type": "reminder", "user_id": 7})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "scheduled" and job["user_id"] == 7 and job["job_name"] == "reminder_1"
    jid = job["id"]
    assert (await c.get(f"{JOBS}/{jid}")).json()["status"] == "scheduled"
    r = await c.post(f"{JOBS}/{jid}/start")
    assert r.status_code == 200 and r.json()["status"] == "running"
    started = datetime.fromisoformat(r.json()["started_at"])
    done_at = started + timedelta(milliseconds=1234)
    r = await c.post(f"{JOBS}/{jid}/complete", json={"at": done_at.isoformat(), "result": "ok"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "completed" and body["duration_ms"] == 1234 and body["result"] == "ok"
    listed = (await c.get(JOBS, params={"job_type": "reminder"})).json()
    assert [j["id"] for j in listed] == [jid]


async def test_lifecycle_fail_keeps_error_and_traceback(svc: Running) -> None:
    c = svc.client
    jid = (await c.post(JOBS, json={"job_id": "x", "job_type": "memory_extraction"})).json()["id"]
    await c.post(f"{JOBS}/{jid}/start")
    r = await c.post(f"{JOBS}/{jid}/fail", json={"error": "boom", "traceback": "Traceback..."})
    assert r.status_code == 200
    got = (await c.get(f"{JOBS}/{jid}")).json()
    assert got["status"] == "failed" and got["error"] == "boom"
    assert got["error_traceback"] == "Traceback..."


async def test_illegal_transitions_are_409_with_a_message(svc: Running) -> None:
    c = svc.client
    jid = (await c.post(JOBS, json={"job_id": "x", "job_type": "reminder"})).json()["id"]
    r = await c.post(f"{JOBS}/{jid}/complete")
    assert r.status_code == 409 and "not started" in r.json()["detail"]
    r = await c.post(f"{JOBS}/{jid}/fail", json={"error": "e"})
    assert r.status_code == 409
    assert (await c.post(f"{JOBS}/{jid}/start")).status_code == 200
    r = await c.post(f"{JOBS}/{jid}/start")
    assert r.status_code == 409 and "running" in r.json()["detail"]
    assert (await c.post(f"{JOBS}/{jid}/complete")).status_code == 200
    for action, body in (("start", None), ("complete", None), ("fail", {"error": "x"})):
        r = await c.post(f"{JOBS}/{jid}/{action}", json=body)
        assert r.status_code == 409, (action, r.text)
    assert (await c.get(f"{JOBS}/{jid}")).json()["status"] == "completed"
    # fail needs its error field: 422 naming it
    jid2 = (await c.post(JOBS, json={"job_id": "y", "job_type": "reminder"})).json()["id"]
    await c.post(f"{JOBS}/{jid2}/start")
    r = await c.post(f"{JOBS}/{jid2}/fail", json={})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "error"
    # duplicate run_id
    await c.post(JOBS, json={"job_id": "z", "job_type": "t", "run_id": "dup"})
    r = await c.post(JOBS, json={"job_id": "z", "job_type": "t", "run_id": "dup"})
    assert r.status_code == 409


async def test_unknown_and_malformed_ids(svc: Running) -> None:
    c = svc.client
    r = await c.get(f"{JOBS}/{uuid.uuid4()}")
    assert r.status_code == 404 and "not found" in r.json()["detail"]
    r = await c.post(f"{JOBS}/{uuid.uuid4()}/start")
    assert r.status_code == 404
    r = await c.get(f"{JOBS}/not-a-uuid")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "execution_id"]


def _expected(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What a run must look like once all its events arrived, in any order."""
    kinds = {e["kind"] for e in events}
    # timed_out is final (docs/job-lifecycle.md): a run that finishes late stays timed_out.
    rank = ["scheduled", "missed", "skipped", "running", "completed", "cancelled", "failed",
            "timed_out"]  # fmt: skip
    status_of = {
        "scheduled": "scheduled",
        "started": "running",
        "completed": "completed",
        "failed": "failed",
        "missed": "missed",
        "skipped": "skipped",
        "cancelled": "cancelled",
        "timed_out": "timed_out",
    }
    status = max((status_of[k] for k in kinds), key=rank.index)
    times = {e["kind"]: e["at"] for e in events}
    return {
        "status": status,
        "started_at": times.get("started"),
        "finished_at": times.get("completed") or times.get("failed") or times.get("cancelled"),
    }


async def test_batch_events_any_order_any_repeat_same_rows(svc: Running) -> None:
    """Every permutation of a run's events (and re-sends) gives one identical row."""
    c = svc.client
    base = datetime.now(UTC) - timedelta(hours=2)
    rng = random.Random(42)
    expected: dict[str, dict[str, Any]] = {}
    sequences = [
        ["scheduled", "started", "completed"],
        ["scheduled", "started", "failed"],
        ["scheduled", "missed"],
        ["scheduled", "missed", "started", "completed"],
        ["scheduled", "started", "timed_out", "completed"],
        ["scheduled", "started", "timed_out", "failed"],
        ["started", "timed_out"],
        ["scheduled", "skipped"],
        ["scheduled", "started", "cancelled"],
    ]
    batches: list[list[dict[str, Any]]] = []
    for s_i, kinds in enumerate(sequences):
        for p_i, perm in enumerate(itertools.permutations(range(len(kinds)))):
            if p_i >= 6:
                break
            run = f"run-{s_i}-{p_i}"
            evs = []
            for k_i, kind in enumerate(kinds):
                extra: dict[str, Any] = {}
                if kind == "failed":
                    extra = {"error": "boom", "traceback": "tb"}
                evs.append(ev(run, kind, base + timedelta(seconds=10 * k_i), k_i, **extra))
            expected[run] = _expected(evs)
            ordered = [evs[i] for i in perm]
            for e in ordered:
                batches.append([e])
            batches.append(rng.sample(evs, len(evs)))  # re-sent as one batch
    rng.shuffle(batches)
    for batch in batches:
        r = await c.post(f"{JOBS}/events", json={"events": batch})
        assert r.status_code == 200, r.text
    rows = (await c.get(JOBS, params={"limit": 1000, "hours": 168})).json()
    by_run = {r["run_id"]: r for r in rows}
    assert set(by_run) == set(expected)
    for run, exp in expected.items():
        row = by_run[run]
        assert row["status"] == exp["status"], (run, row)
        for key in ("started_at", "finished_at"):
            if exp[key] is None:
                assert row[key] is None
            else:
                assert datetime.fromisoformat(row[key]) == datetime.fromisoformat(exp[key])
        if exp["started_at"] and exp["finished_at"]:
            span = datetime.fromisoformat(exp["finished_at"]) - datetime.fromisoformat(
                exp["started_at"]
            )
            assert row["duration_ms"] == int(span.total_seconds() * 1000), (run, row)
        else:
            assert row["duration_ms"] is None
        if row["status"] == "failed":
            assert row["error"] == "boom" and row["error_traceback"] == "tb"
    # stats agree with the rows (the rollups were maintained through every re-send)
    stats = (await c.get(f"{JOBS}/stats", params={"hours": 168})).json()
    assert stats["total"] == len(expected)
    for status in ("completed", "failed", "missed", "skipped", "cancelled", "timed_out", "running"):
        assert stats[status] == sum(1 for e in expected.values() if e["status"] == status)


async def test_completed_before_started_computes_duration(svc: Running) -> None:
    c = svc.client
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    r = await c.post(
        f"{JOBS}/events",
        json={
            "events": [
                ev("r", "completed", t0 + timedelta(seconds=3), 2),
            ]
        },
    )
    assert r.status_code == 200
    row = (await c.get(JOBS)).json()[0]
    assert row["status"] == "completed" and row["duration_ms"] is None
    await c.post(f"{JOBS}/events", json={"events": [ev("r", "started", t0, 1)]})
    row = (await c.get(JOBS)).json()[0]
    assert row["status"] == "completed" and row["duration_ms"] == 3000
    assert datetime.fromisoformat(row["created_at"]) == t0
    # an explicit duration from the event wins over the computed one
    await c.post(
        f"{JOBS}/events",
        json={"events": [ev("r", "completed", t0 + timedelta(seconds=3), 3, duration_ms=2950)]},
    )
    row = (await c.get(JOBS)).json()[0]
    assert row["duration_ms"] == 2950
    assert len((await c.get(JOBS)).json()) == 1


async def test_list_filters_and_stable_pagination(svc: Running) -> None:
    c = svc.client
    now = datetime.now(UTC)
    events = []
    for i in range(57):
        at = now - timedelta(minutes=i % 5)  # many equal timestamps: ties must be stable
        events.append(ev(f"p{i}", "scheduled", at, 0, user_id=i % 3, correlation_id=f"c{i % 2}"))
        events[-1]["job_type"] = "a" if i % 2 else "b"
    assert (await c.post(f"{JOBS}/events", json={"events": events})).status_code == 200
    seen: list[str] = []
    for offset in range(0, 60, 10):
        page = (await c.get(JOBS, params={"limit": 10, "offset": offset})).json()
        seen += [j["run_id"] for j in page]
    assert len(seen) == 57 and len(set(seen)) == 57
    only = (await c.get(JOBS, params={"user_id": 1, "job_type": "a"})).json()
    assert {j["run_id"] for j in only} == {f"p{i}" for i in range(57) if i % 3 == 1 and i % 2}
    corr = (await c.get(JOBS, params={"correlation_id": "c0"})).json()
    assert len(corr) == 29
    assert (await c.get(JOBS, params={"status": "running"})).json() == []


_kinds = st.sampled_from([k.value for k in JobEventKind])
# Accepted event times: from 2000 to now (+ a small skew); NUL is refused by the schema.
_moments = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2025, 12, 30), timezones=st.just(UTC)
)
_texts = st.one_of(
    st.none(),
    st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=50),
    st.just("x" * 10_000),
)


@settings(max_examples=200)
@given(
    events=st.lists(st.tuples(_kinds, _moments, _texts), min_size=1, max_size=8),
    seed=st.integers(min_value=0, max_value=2**70),
)
def test_one_status_whatever_the_arrival_order(
    events: list[tuple[str, datetime, str | None]], seed: int
) -> None:
    """Any events of one run, in any order: one final row, and timed_out is final."""
    parsed = [
        JobEvent.model_validate(
            ev("r", kind, at, n, error=error, duration_ms=7 if kind == "completed" else None)
        )
        for n, (kind, at, error) in enumerate(events)
    ]
    shuffled = list(parsed)
    random.Random(seed).shuffle(shuffled)
    finals = []
    for order in (parsed, shuffled, list(reversed(parsed))):
        state = None
        for event in order:
            state = merge_event(state, event, 4096)
        assert state is not None
        finals.append(
            (state["status"], state["started_at"], state["finished_at"], state["scheduled_at"])
        )
    assert finals[0] == finals[1] == finals[2]
    kinds = {kind for kind, _, _ in events}
    status = finals[0][0]
    if "timed_out" in kinds:
        assert status == "timed_out"
    elif "failed" in kinds:
        assert status == "failed"
    assert status in {s.value for s in JobStatus}
