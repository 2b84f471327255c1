"""Cron schedules across DST changes: nothing invented, nothing hidden, Moscow unshifted.

The properties are checked against an independent oracle: every minute of a window is
walked in UTC and its local wall time matched against the expression by brute force.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rest_service.cron_schedule import (
    CRON_PATTERN,
    CronExpression,
    Schedule,
    ScheduleError,
    next_fire,
)

ZONES = ["Europe/Berlin", "America/New_York", "Europe/Moscow", "UTC"]
#: Windows around the 2026 transitions (and Moscow's ordinary days) in UTC.
TRANSITIONS = {
    "Europe/Berlin": [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)],
    "America/New_York": [
        datetime(2026, 3, 8, 7, tzinfo=UTC),
        datetime(2026, 11, 1, 6, tzinfo=UTC),
    ],
    "Europe/Moscow": [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)],
    "UTC": [datetime(2026, 3, 29, 1, tzinfo=UTC)],
}


def field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    single = number.map(str)
    rng = st.tuples(number, number).map(lambda ab: f"{min(ab)}-{max(ab)}")
    step = st.tuples(st.sampled_from(["*", f"{low}-{high}"]), st.integers(1, high)).map(
        lambda t: f"{t[0]}/{t[1]}"
    )
    part = st.one_of(st.just("*"), single, rng, step)
    return st.lists(part, min_size=1, max_size=3).map(",".join)


expressions = st.builds(
    lambda *f: " ".join(f),
    field(0, 59),
    field(0, 23),
    st.one_of(st.just("*"), field(1, 28)),
    st.just("*"),
    st.one_of(st.just("*"), field(0, 7)),
)
#: Hours that fall into the gaps and repeats (1-3 local) are the interesting ones.
dst_expressions = st.builds(
    lambda m, h: f"{m} {h} * * *",
    field(0, 59),
    st.sampled_from(["1", "2", "3", "1-3", "2,3", "*", "*/2", "0-4/2"]),
)


def fires(expr: CronExpression, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    out = []
    at = start
    while True:
        nxt = next_fire(expr, tz, at)
        assert nxt is not None
        if nxt >= end:
            return out
        assert nxt > at
        out.append(nxt)
        at = nxt


def oracle(expr: CronExpression, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Brute force, independent of the code under test: walk every UTC minute in
    (start, end); a matching wall time fires the first time it is seen (a repeated hour
    does not fire again), and matching wall times skipped by a gap fire at the first
    minute after the gap."""
    out: set[datetime] = set()
    seen: set[datetime] = set()
    t = start + timedelta(minutes=1)
    prev_wall = (start.astimezone(tz)).replace(tzinfo=None, fold=0)
    while t < end:
        wall = t.astimezone(tz).replace(tzinfo=None, fold=0)
        skipped = prev_wall + timedelta(minutes=1)
        while skipped < wall:  # a gap: these wall minutes exist nowhere
            if _matches(expr, skipped):
                out.add(t)
            skipped += timedelta(minutes=1)
        if _matches(expr, wall) and wall not in seen:
            out.add(t)
        seen.add(wall)
        prev_wall = wall
        t += timedelta(minutes=1)
    return sorted(out)


def _matches(expr: CronExpression, wall: datetime) -> bool:
    return wall.minute in expr.minutes and wall.hour in expr.hours and expr.matches_day(wall.date())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=dst_expressions,
    tz_name=st.sampled_from(ZONES),
    which=st.integers(0, 1),
)
def test_dst_neither_invents_nor_hides_runs(text: str, tz_name: str, which: int) -> None:
    expr = CronExpression.parse(text)
    tz = ZoneInfo(tz_name)
    center = TRANSITIONS[tz_name][which % len(TRANSITIONS[tz_name])]
    start, end = center - timedelta(hours=6), center + timedelta(hours=6)
    got = fires(expr, tz, start, end)
    # strictly increasing, on whole minutes
    assert got == sorted(set(got))
    assert all(t.second == 0 and t.microsecond == 0 for t in got)
    # each matching wall time fires exactly once: a repeated hour once, a skipped one at
    # the end of the gap (merged with a run already there)
    assert got == oracle(expr, tz, start, end)
    # no two runs show the same local wall time (the repeated hour did not fire twice)
    shown = [t.astimezone(tz).replace(tzinfo=None, fold=0) for t in got]
    assert len(shown) == len(set(shown))


@settings(max_examples=80, deadline=None)
@given(
    text=expressions,
    start=st.datetimes(
        min_value=datetime(2012, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)
    ),
)
def test_moscow_nothing_shifts(text: str, start: datetime) -> None:
    """Moscow has had UTC+3 all year since 2014 (and no DST since 2011): a fire time is
    always the wall time minus three hours, and matches the expression."""
    expr = CronExpression.parse(text)
    moscow = ZoneInfo("Europe/Moscow")
    at = start
    for _ in range(5):
        nxt = next_fire(expr, moscow, at)
        assert nxt is not None and nxt > at
        wall = nxt.astimezone(moscow)
        if nxt.year >= 2015:
            assert wall.utcoffset() == timedelta(hours=3)
        assert _matches(expr, wall.replace(tzinfo=None))
        # the previous minute boundary up to it held no other match
        probe = at.astimezone(moscow).replace(tzinfo=None, second=0, microsecond=0)
        probe += timedelta(minutes=1)
        while probe < wall.replace(tzinfo=None):
            assert not _matches(expr, probe) or probe.replace(tzinfo=moscow) <= at
            probe += timedelta(minutes=1)
            if probe - at.astimezone(moscow).replace(tzinfo=None) > timedelta(days=2):
                break
        at = nxt


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80), expressions, st.from_regex(CRON_PATTERN, fullmatch=True)))
def test_parser_accepts_exactly_the_documented_pattern(text: str) -> None:
    """The OpenAPI pattern and the parser agree: a string matches CRON_PATTERN exactly
    when it parses (anything else is a ScheduleError with a message)."""
    try:
        expr = CronExpression.parse(text)
    except ScheduleError as exc:
        assert str(exc)
        assert not re.fullmatch(CRON_PATTERN, text) or len(text) > 256
        return
    assert re.fullmatch(CRON_PATTERN, text)
    assert expr.minutes and expr.hours and expr.days and expr.months and expr.weekdays


def test_ranges_wrap() -> None:
    assert CronExpression.parse("0 22-2 * * *").hours == {22, 23, 0, 1, 2}
    assert CronExpression.parse("0 0 * * fri-mon").weekdays == {5, 6, 0, 1}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("* * * * * *", "more than once a minute"),
        ("61 * * * *", "minute: 61 is outside 0-59"),
        ("* * * *", "expected 5 fields"),
        ("@reboot", "unknown macro"),
        ("*/0 * * * *", "step must be 1-999"),
        (" * * * * *", "not a cron expression"),
        ("*\t* * * *", "not a cron expression"),
        ("@DAILY", "unknown macro"),
        ("x * * * *", "minute: 'x' is not a number"),
        ("\udcff * * * *", "is not a number"),
        ("1\x00 * * * *", "is not a number"),
        ("٣ * * * *", "is not a number"),  # a non-ASCII digit
        ("99999999999999999999 * * * *", "is not a number"),
    ],
)
def test_bad_expressions_name_their_part(text: str, fragment: str) -> None:
    with pytest.raises(ScheduleError, match=fragment):
        CronExpression.parse(text)


def test_never_firing_and_too_fast_schedules_are_refused() -> None:
    with pytest.raises(ScheduleError, match="never fires"):
        Schedule.build("0 0 31 2 *", None, "UTC")
    with pytest.raises(ScheduleError, match="more than once a minute"):
        Schedule.build(None, 59, "UTC")
    with pytest.raises(ScheduleError, match="unknown time zone"):
        Schedule.build("* * * * *", None, "Mars/Olympus")
    with pytest.raises(ScheduleError, match="unknown time zone"):
        Schedule.build("* * * * *", None, "../../etc/passwd")


def test_known_transitions() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    daily = CronExpression.parse("30 2 * * *")
    # spring forward: 02:30 does not exist on 29 March; it fires at 03:00 CEST, once
    got = fires(
        daily, berlin, datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 30, 12, tzinfo=UTC)
    )
    assert got == [
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]
    # fall back: 02:30 happens twice on 25 October; it fires at the first, once
    got = fires(
        daily,
        berlin,
        datetime(2026, 10, 24, 12, tzinfo=UTC),
        datetime(2026, 10, 25, 12, tzinfo=UTC),
    )
    assert got == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]
    hourly = CronExpression.parse("0 * * * *")
    ny = ZoneInfo("America/New_York")
    got = fires(
        hourly,
        ny,
        datetime(2026, 11, 1, 4, 30, tzinfo=UTC),
        datetime(2026, 11, 1, 8, 30, tzinfo=UTC),
    )
    # 01:00 EDT, (01:00 EST, the repeat: not again), 02:00 EST, 03:00 EST
    assert got == [datetime(2026, 11, 1, h, tzinfo=UTC) for h in (5, 7, 8)]
    assert Schedule.build("0 9 * * 1-5", None, "Europe/Berlin").describe() == (
        "at 09:00 on Mon, Tue, Wed, Thu, Fri (Europe/Berlin)"
    )
