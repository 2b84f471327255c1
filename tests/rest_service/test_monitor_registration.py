"""The job tracker's side of cron monitors: APScheduler triggers -> monitor specs that
rest_service accepts and that fire exactly when APScheduler does; registration that
survives rest_service being down at start-up."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from otel_assist.history.shipper import HistorySettings
from otel_assist.jobs.monitors import MonitorRegistrar, monitor_spec, slug_for
from rest_service.monitor_schemas import SLUG_PATTERN, MonitorCreate
from tests import servers
from tests.rest_service.conftest import TOKEN
from tests.rest_service.test_monitors_e2e import rest_process, service_env

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def aps_field(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    value = number.map(str) if names is None else st.one_of(number.map(str), st.sampled_from(names))
    single = value
    rng = st.tuples(number, number).map(lambda ab: f"{min(ab)}-{max(ab)}")
    step = st.tuples(st.sampled_from(["*", f"{low}-{high}"]), st.integers(1, high - low + 1)).map(
        lambda t: f"{t[0]}/{t[1]}"
    )
    part = st.one_of(single, rng, step)
    return st.one_of(st.just("*"), st.lists(part, min_size=1, max_size=3).map(",".join))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    minute=aps_field(0, 59),
    hour=aps_field(0, 23),
    day=aps_field(1, 28),
    month=aps_field(1, 12),
    dow=aps_field(0, 6, DAYS),
    second=st.sampled_from(["0", "15", "*/10", "*"]),
    start=st.datetimes(datetime(2024, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)),
)
def test_cron_triggers_become_specs_that_fire_like_apscheduler(
    minute: str, hour: str, day: str, month: str, dow: str, second: str, start: datetime
) -> None:
    try:
        trigger = CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=dow,
            timezone="UTC",
        )
    except ValueError:
        assume(False)
        return
    spec = monitor_spec("job", trigger, job_type="t", grace_s=5)
    if spec is None:
        # refused only for what a 5-field cron cannot say the same way
        assert not second.isdigit() or (day != "*" and dow != "*") or "/" in dow, (
            minute,
            hour,
            day,
            month,
            dow,
            second,
        )
        return
    monitor = MonitorCreate(**spec)  # rest_service accepts it
    schedule = monitor.schedule()
    # late in a minute, so APScheduler's inclusive "at or after" and the monitor's
    # "strictly after" look for the same next minute
    start = start.replace(second=59, microsecond=500_000)
    ours, theirs = start, start
    prev = None
    for _ in range(5):
        theirs_next = trigger.get_next_fire_time(prev, theirs)
        ours_next = schedule.next_after(ours)
        if theirs_next is None:
            assert ours_next is None
            return
        # APScheduler fires at second `second`; the monitor expects the minute
        assert ours_next == theirs_next.replace(second=0).astimezone(UTC), spec
        prev = theirs_next
        theirs = theirs_next + timedelta(seconds=1)
        ours = ours_next


def test_other_triggers() -> None:
    spec = monitor_spec("every-5m", IntervalTrigger(minutes=5, jitter=10), grace_s=2.5)
    assert spec == {
        "slug": "every-5m",
        "job_type": "cron_job",
        "interval_seconds": 300,
        "grace_seconds": 13,
    }
    MonitorCreate(**spec)
    assert monitor_spec("fast", IntervalTrigger(seconds=59)) is None
    assert monitor_spec("once", DateTrigger(datetime(2030, 1, 1, tzinfo=UTC))) is None
    berlin = monitor_spec("b", CronTrigger.from_crontab("30 2 * * sun", timezone="Europe/Berlin"))
    assert (
        berlin is not None
        and berlin["timezone"] == "Europe/Berlin"
        and berlin["cron"] == "30 2 * * sun"
    )


@given(st.text(min_size=1, max_size=300))
def test_any_job_id_gets_a_valid_unique_slug(job_id: str) -> None:
    slug = slug_for(job_id)
    assert re.fullmatch(SLUG_PATTERN, slug)
    if re.fullmatch(SLUG_PATTERN, job_id):
        assert slug == job_id
    else:
        assert slug != slug_for(job_id + "x")


@pytest.mark.timeout(120)
def test_registration_waits_for_rest_service_and_is_idempotent(
    postgres: servers.Postgres, tmp_path: Path
) -> None:
    """Registered while rest_service is down: batched, retried until it is up; sending the
    same specs again changes nothing; a spec the server refuses does not block the rest."""
    database_url = postgres.create_database(f"rs_reg_{uuid.uuid4().hex[:8]}")
    port = servers.free_port()
    api = f"http://127.0.0.1:{port}/api/v1"
    settings = HistorySettings(url=api, token=TOKEN, retry_initial_s=0.2, retry_max_s=1.0)
    registrar = MonitorRegistrar(settings)
    triggers = {f"job-{i}": IntervalTrigger(minutes=i + 1) for i in range(20)}
    for job_id, trigger in triggers.items():
        registrar.add(job_id, trigger, job_type="batch")
    # a spec rest_service refuses: a zone this host's tz database may not know
    registrar.add("bad-zone", CronTrigger.from_crontab("0 * * * *", timezone="UTC"))
    registrar._pending["bad-zone"]["timezone"] = "Not/AZone"
    assert not registrar.wait_idle(1.0)  # nothing listens yet
    with rest_process(service_env(database_url), tmp_path / "rest.log", port):
        assert registrar.wait_idle(30)
        listed = httpx.get(f"{api}/monitors", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert sorted(m["slug"] for m in listed) == sorted(triggers)
        assert registrar.stats["registered"] == 20 and registrar.stats["rejected"] == 1
        assert registrar.stats.get("retried", 0) >= 21
        before = {m["slug"]: m["updated_at"] for m in listed}
        for job_id, trigger in triggers.items():
            registrar.add(job_id, trigger, job_type="batch")
        assert registrar.wait_idle(30)
        again = httpx.get(f"{api}/monitors", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert {m["slug"]: m["updated_at"] for m in again} == before
