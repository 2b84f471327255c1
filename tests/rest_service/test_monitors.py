"""Cron monitors over the API on SQLite and Postgres: declare, check in, sweep.

The sweeper is driven with an explicit ``now`` (a later database time) so a missed run is
seen without waiting for a real schedule; the real-time paths (a SIGKILLed scheduler, two
rest_service processes, curl) are in test_monitors_e2e.py.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rest_service.crud import monitors as crud
from rest_service.monitor_schemas import MonitorState
from rest_service.monitor_sweeper import fold_states, sweep_once, update_metrics
from tests.rest_service.conftest import API, INGEST_TOKEN, READ_TOKEN, TOKEN, Running, auth

MON = f"{API}/monitors"


async def runs_of(svc: Running, slug: str) -> list[dict[str, Any]]:
    r = await svc.client.get(f"{API}/job-executions", params={"limit": 1000, "hours": 168})
    assert r.status_code == 200, r.text
    return [row for row in r.json() if row["job_id"] == slug]


async def test_declare_list_get_pause_resume(svc: Running) -> None:
    c = svc.client
    r = await c.put(f"{MON}/nightly", json={"cron": "30 2 * * *", "timezone": "Europe/Berlin"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["state"] == "ok" and body["enabled"] is True
    assert body["schedule_words"] == "at 02:30 (Europe/Berlin)"
    assert body["next_expected_at"] is not None
    # the same spec again: 200, nothing changes
    r2 = await c.put(f"{MON}/nightly", json={"cron": "30 2 * * *", "timezone": "Europe/Berlin"})
    assert r2.status_code == 200 and r2.json()["updated_at"] == body["updated_at"]
    r = await c.post(MON, json={"slug": "nightly", "interval_seconds": 300})
    assert r.status_code == 409 and "already exists" in r.json()["detail"]
    r = await c.post(MON, json={"slug": "every-5m", "interval_seconds": 300, "grace_seconds": 30})
    assert r.status_code == 201, r.text
    listed = (await c.get(MON, headers=auth(READ_TOKEN))).json()
    assert [m["slug"] for m in listed] == ["every-5m", "nightly"]
    r = await c.post(f"{MON}/nightly/pause")
    assert r.status_code == 200 and r.json()["state"] == "paused"
    # re-registering a paused monitor leaves it paused
    await c.put(f"{MON}/nightly", json={"cron": "0 3 * * *", "timezone": "Europe/Berlin"})
    assert (await c.get(f"{MON}/nightly")).json()["state"] == "paused"
    r = await c.post(f"{MON}/nightly/resume")
    assert r.status_code == 200 and r.json()["state"] == "ok"
    # the read token cannot write; no token is a 401
    r = await c.post(f"{MON}/nightly/pause", headers=auth(READ_TOKEN))
    assert r.status_code == 403
    r = await c.get(MON, headers={"Authorization": ""})
    assert r.status_code == 401


async def test_bad_input_names_the_field(svc: Running) -> None:
    c = svc.client
    r = await c.get(f"{MON}/no-such-monitor")
    assert r.status_code == 404 and "monitor 'no-such-monitor' not found" in r.json()["detail"]
    r = await c.post(f"{MON}/no-such-monitor/checkins", data={"status": "ok"})
    assert r.status_code == 404 and "no-such-monitor" in r.json()["detail"]
    cases = [
        ({"cron": "61 * * * *"}, "cron", "invalid cron expression: minute: 61"),
        ({"cron": "* * * * * *"}, "cron", "more than once a minute"),
        ({"interval_seconds": 30}, "interval_seconds", "more than once a minute"),
        ({"cron": "0 0 31 2 *"}, None, "never fires"),
        ({"cron": "* * * * *", "timezone": "Mars/Base"}, "timezone", "unknown time zone"),
        ({}, None, "exactly one of cron and interval_seconds"),
        ({"cron": "* * * * *", "interval_seconds": 60}, None, "exactly one"),
        ({"cron": "* * * * *", "grace_seconds": -1}, "grace_seconds", ""),
        ({"cron": "* * * * *", "failure_tolerance": 2**70}, "failure_tolerance", ""),
        # JSON Schema says integer: a boolean or a string is refused (lax mode took them)
        ({"cron": "* * * * *", "grace_seconds": True}, "grace_seconds", "JSON integer"),
        ({"cron": "* * * * *", "max_runtime_seconds": "60"}, "max_runtime_seconds", "JSON"),
        ({"interval_seconds": True}, "interval_seconds", "JSON integer"),
        ({"cron": "* * * * *", "failure_tolerance": False}, "failure_tolerance", "JSON"),
    ]
    for body, field, fragment in cases:
        r = await c.put(f"{MON}/bad", json=body)
        assert r.status_code == 422, (body, r.text)
        detail = r.json()["detail"]
        text = str(detail)
        assert fragment in text, (body, detail)
        if field is not None:
            assert any(field in e["loc"] for e in detail), (body, detail)
    r = await c.put(f"{MON}/bad%2Fslug", json={"cron": "* * * * *"})
    assert r.status_code in (404, 422)
    r = await c.put(f"{MON}/{'x' * 129}", json={"cron": "* * * * *"})
    assert r.status_code == 422
    assert (await c.get(MON)).json() == []


async def test_checkins_json_and_form_pair_and_are_idempotent(svc: Running) -> None:
    c = svc.client
    await c.put(f"{MON}/backup", json={"interval_seconds": 3600, "job_type": "backup"})
    ingest = auth(INGEST_TOKEN)
    # a form one-liner: curl -d status=ok
    r = await c.post(f"{MON}/backup/checkins", data={"status": "ok"}, headers=ingest)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "completed" and r.json()["duplicate"] is False
    # start + finish paired by check_in_id, JSON then form
    start = {"status": "in_progress", "check_in_id": "run-1", "correlation_id": "cid-1"}
    r = await c.post(f"{MON}/backup/checkins", json=start, headers=ingest)
    assert r.status_code == 202 and r.json()["status"] == "running"
    run_id = r.json()["run_id"]
    r = await c.post(f"{MON}/backup/checkins", json=start, headers=ingest)
    assert r.json() == {"slug": "backup", "run_id": run_id, "status": "running", "duplicate": True}
    finish = {"status": "error", "check_in_id": "run-1", "exit_code": "3", "message": "disk full"}
    r = await c.post(f"{MON}/backup/checkins", data=finish, headers=ingest)
    assert r.status_code == 202 and r.json()["status"] == "failed"
    r = await c.post(f"{MON}/backup/checkins", data=finish, headers=ingest)
    assert r.json()["duplicate"] is True
    rows = await runs_of(svc, "backup")
    assert len(rows) == 2
    failed = next(row for row in rows if row["run_id"] == run_id)
    assert failed["status"] == "failed" and failed["error"] == "exit code 3: disk full"
    assert failed["correlation_id"] == "cid-1" and failed["job_type"] == "backup"
    assert failed["started_at"] is not None and failed["duration_ms"] is not None
    mon = (await c.get(f"{MON}/backup")).json()
    assert mon["state"] == "failing"  # tolerance 1: the last finished run failed
    assert mon["last_checkin"]["run_id"] == run_id
    # bad check-ins
    for data, field in [
        ({"status": "done"}, "status"),
        ({"status": "ok", "duration": "-1"}, "duration"),
        ({"status": "ok", "bogus": "1"}, "bogus"),
        ({"status": "ok", "exit_code": str(2**70)}, "exit_code"),
    ]:
        r = await c.post(f"{MON}/backup/checkins", data=data, headers=ingest)
        assert r.status_code == 422, (data, r.text)
        assert any(field in e["loc"] for e in r.json()["detail"]), r.text
    r = await c.post(
        f"{MON}/backup/checkins",
        content="status=ok&status=error",
        headers={**ingest, "content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 422 and "more than once" in r.text
    r = await c.post(
        f"{MON}/backup/checkins",
        content=b"status=ok",
        headers={**ingest, "content-type": "text/plain"},
    )
    assert r.status_code == 422
    assert len(await runs_of(svc, "backup")) == 2


async def test_sweeper_records_each_miss_once_and_times_out(svc: Running) -> None:
    c = svc.client
    db = svc.db
    await c.put(f"{MON}/hourly", json={"cron": "0 * * * *", "grace_seconds": 120})
    row = await crud.get_row(db, "hourly")
    first = row.next_expected_at
    # within the grace period: nothing yet, state late
    res = await sweep_once(db, 65536, now=first + timedelta(seconds=60))
    assert res.missed == 0
    mon = await crud.public(db, row, first + timedelta(seconds=60))
    assert mon.state is MonitorState.LATE
    # three hours later: three misses, recorded once however often we sweep
    later = first + timedelta(hours=2, minutes=5)
    res = await sweep_once(db, 65536, now=later)
    assert res.missed == 3
    for _ in range(3):
        assert (await sweep_once(db, 65536, now=later)).missed == 0
    rows = await runs_of(svc, "hourly")
    assert sorted(r["status"] for r in rows) == ["missed"] * 3
    assert (await c.get(f"{MON}/hourly")).json()["state"] == "missed"
    await c.put(f"{MON}/stuck", json={"interval_seconds": 600, "max_runtime_seconds": 60})
    # in_progress, then nothing: timed out past max_runtime, and ok later still completes it
    r = await c.post(f"{MON}/stuck/checkins", data={"status": "in_progress", "check_in_id": "a"})
    assert r.json()["status"] == "running"
    now = await crud.db_now(db)
    res = await sweep_once(db, 65536, now=now + timedelta(seconds=61))
    assert res.timed_out == 1 and res.missed == 0
    assert (await sweep_once(db, 65536, now=now + timedelta(seconds=62))).timed_out == 0
    [stuck] = await runs_of(svc, "stuck")
    assert stuck["status"] == "timed_out"
    assert (await c.get(f"{MON}/stuck")).json()["state"] == "failing"
    # timed_out is final (docs/job-lifecycle.md): the late ok is recorded on the row but the
    # run stays timed_out, and the monitor keeps failing until a run succeeds
    r = await c.post(f"{MON}/stuck/checkins", data={"status": "ok", "check_in_id": "a"})
    assert r.json()["status"] == "timed_out"
    assert (await c.get(f"{MON}/stuck")).json()["state"] == "failing"
    r = await c.post(f"{MON}/stuck/checkins", data={"status": "ok", "check_in_id": "b"})
    assert r.json()["status"] == "completed"
    assert (await c.get(f"{MON}/stuck")).json()["state"] == "ok"
    # metrics: one series per monitor, values from the states
    folded = await update_metrics(db, 100)
    assert folded["hourly"][0] == 2 and folded["stuck"][0] == 0


async def test_runs_near_the_expected_time_cover_it(svc: Running) -> None:
    """A check-in long before the expected time does not count for it; a tracked run
    (history events, as the job tracker ships them) within [expected - 30 s, expected +
    grace] does: one history, whoever wrote it."""
    c = svc.client
    db = svc.db
    await c.put(f"{MON}/five", json={"interval_seconds": 300, "grace_seconds": 60})
    cursor = (await crud.get_row(db, "five")).next_expected_at
    assert (await c.post(f"{MON}/five/checkins", data={"status": "ok"})).status_code == 202
    # 300 s early is outside the window: the expected run is still missed
    assert (await sweep_once(db, 65536, now=cursor + timedelta(seconds=61))).missed == 1
    assert (await c.post(f"{MON}/five/pause")).status_code == 200  # out of the way below
    await c.put(f"{MON}/daily", json={"cron": "0 0 * * *", "grace_seconds": 600})
    # Move the sweeper's cursor to a past midnight: the tracked run's events must lie before
    # now + MAX_CLOCK_SKEW_SECONDS to be accepted at ingest.
    expected = (await crud.get_row(db, "daily")).next_expected_at - timedelta(days=2)
    async with db.session() as session:
        await session.execute(
            crud.M.update().where(crud.M.c.slug == "daily").values(next_expected_at=expected)
        )
    events = [
        {
            "event_id": f"tracked-{kind}",
            "run_id": "tracked-run",
            "job_id": "daily",
            "job_type": "report",
            "kind": kind,
            "at": (expected + timedelta(seconds=offset)).isoformat(),
        }
        for kind, offset in (("scheduled", 0), ("started", 5), ("completed", 65))
    ]
    r = await c.post(f"{API}/job-executions/events", json={"events": events})
    assert r.status_code == 200, r.text
    res = await sweep_once(db, 65536, now=expected + timedelta(seconds=601))
    assert res.missed == 0
    row = await crud.get_row(db, "daily")
    assert row.next_expected_at > expected  # covered, and the cursor moved on
    mon = await crud.public(db, row, expected + timedelta(seconds=601))
    assert mon.state is MonitorState.OK and mon.last_checkin is not None
    assert mon.last_checkin.run_id == "tracked-run"


def test_fold_states_caps_the_monitor_attribute() -> None:
    states = [(f"m{i:03d}", MonitorState.OK, float(i)) for i in range(105)]
    states.append(("zz-late", MonitorState.FAILING, 1.0))
    folded = fold_states(states, 100)
    assert len(folded) == 101 and "_other" in folded
    assert folded["_other"] == (3, 104.0)
    assert folded["m000"] == (0, 0.0)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.dictionaries(
        st.sampled_from(
            ["status", "check_in_id", "duration", "exit_code", "correlation_id", "message", "x"]
        ),
        st.one_of(
            st.sampled_from(["ok", "error", "in_progress"]),
            st.text(max_size=40),
            st.text(alphabet=st.characters(codec="utf-8"), max_size=5).map(lambda s: s + "\udcff"),
            st.integers(min_value=-(2**70), max_value=2**70).map(str),
            st.just("\x00"),
            st.just("x" * 5000),
        ),
        max_size=6,
    ),
    as_json=st.booleans(),
)
async def test_generated_checkins_never_500(
    svc: Running, body: dict[str, str], as_json: bool
) -> None:
    c = svc.client
    await c.put(f"{MON}/gen", json={"interval_seconds": 60})
    if as_json:
        r = await c.post(
            f"{MON}/gen/checkins",
            content=json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass"),
            headers={"content-type": "application/json"},
        )
    else:
        safe = {
            k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            for k, v in body.items()
        }
        r = await c.post(f"{MON}/gen/checkins", data=safe)
    assert r.status_code in (202, 422), r.text
    if r.status_code == 422:
        assert r.json()["detail"]


async def test_admin_monitors_page_and_csrf_protected_pause(svc: Running) -> None:
    c = svc.client
    await c.put(f"{MON}/page-job", json={"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"})
    # an id outside the correlation-id charset is refused at ingest (it would become a link)
    bad = await c.post(
        f"{MON}/page-job/checkins",
        data={"status": "error", "correlation_id": "cid-<b>&x", "message": "<script>x</script>"},
    )
    assert bad.status_code == 422 and "correlation_id" in bad.text
    await c.post(
        f"{MON}/page-job/checkins",
        data={"status": "error", "correlation_id": "cid-1.b", "message": "<script>x</script>"},
    )
    form = await c.get("/admin/login")
    nonce = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
    assert nonce, form.text
    r = await c.post(
        "/admin/login",
        data={"token": TOKEN, "login_csrf": nonce.group(1), "next": "/admin/monitors"},
        headers={"Origin": "http://rest"},
    )
    assert r.status_code == 303, r.text
    page = await c.get("/admin/monitors")
    assert page.status_code == 200
    html = page.text
    assert 'href="/admin/monitors" class="on"' in html
    assert "page-job" in html and "failing" in html
    assert "at 09:00 on Mon, Tue, Wed, Thu, Fri (Europe/Berlin)" in html
    assert "/admin/correlation/cid-1.b" in html  # the last check-in's id, linked
    assert "<script>" not in html  # the message is escaped
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token
    pause = "/admin/monitors/page-job/pause"
    assert (await c.post(pause, data={})).status_code == 403
    assert (await c.post(pause, data={"csrf_token": "forged"})).status_code == 403
    foreign = await c.post(
        pause, data={"csrf_token": token.group(1)}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    assert (await c.get(f"{MON}/page-job")).json()["enabled"] is True
    done = await c.post(
        pause, data={"csrf_token": token.group(1)}, headers={"Origin": "http://rest"}
    )
    assert done.status_code == 303 and done.headers["location"].endswith("changed=paused")
    assert (await c.get(f"{MON}/page-job")).json()["state"] == "paused"
    html = (await c.get("/admin/monitors?changed=paused")).text
    assert "Monitor paused." in html and "Resume" in html
    resume = "/admin/monitors/page-job/resume"
    done = await c.post(
        resume, data={"csrf_token": token.group(1)}, headers={"Origin": "http://rest"}
    )
    assert done.status_code == 303
    assert (await c.get(f"{MON}/page-job")).json()["enabled"] is True
    missing = await c.post(
        "/admin/monitors/nope/pause",
        data={"csrf_token": token.group(1)},
        headers={"Origin": "http://rest"},
    )
    assert missing.status_code == 404


nasty = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.just("\udcff"),
    st.just("\x00* * * *"),
    st.just("x" * 10_000),
    st.recursive(st.integers(), lambda inner: st.lists(inner, max_size=3), max_leaves=50),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
spec_values = {
    "cron": st.one_of(
        nasty,
        st.sampled_from(["* * * * *", "0 9 * * mon-fri", "@daily", "0 0 31 2 *", "* * * * * *"]),
    ),
    "interval_seconds": st.one_of(nasty, st.integers(0, 200)),
    "timezone": st.one_of(
        nasty,
        st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Europe/Moscow", "../etc"]),
    ),
    "grace_seconds": nasty,
    "max_runtime_seconds": nasty,
    "failure_tolerance": nasty,
    "owner_service": nasty,
    "job_type": nasty,
}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.fixed_dictionaries({}, optional=spec_values),
    # "." and ".." are dot segments: HTTP clients remove them from a path before sending it
    # (RFC 3986 5.2.4), so such a slug never reaches the server as a slug.
    slug=st.one_of(
        st.sampled_from(["gen", "gen.2", "a:b@c-d"]),
        st.text(min_size=1, max_size=20).filter(lambda s: s not in (".", "..")),
    ),
)
async def test_generated_monitor_specs_never_500(
    svc: Running, body: dict[str, Any], slug: str
) -> None:
    """Any body, any slug: 200/201 with a monitor that reads back, or 404/422 with a
    message; never a 500, never a half-written monitor."""
    from urllib.parse import quote

    payload = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    path = f"{MON}/{quote(slug.encode('utf-8', 'surrogatepass'), safe='')}"
    r = await svc.client.put(path, content=payload, headers={"content-type": "application/json"})
    if r.status_code == 307:
        # Starlette decodes %2F before routing: a slug ending in "/" is a path with a
        # trailing slash, which the router redirects (never a monitor, never a 5xx).
        assert slug.endswith("/"), (slug, path)
        return
    assert r.status_code in (200, 201, 404, 422), (r.status_code, r.text, repr(slug), path)
    if r.status_code in (200, 201):
        got = (await svc.client.get(path)).json()
        assert got["slug"] == slug and got["next_expected_at"] is not None
        assert (got["cron"] is None) != (got["interval_seconds"] is None)
    else:
        assert r.json()["detail"]
