"""Cron schedules: parse a 5-field expression, find the next fire time in a time zone, and
describe it in words.

Why not APScheduler's ``CronTrigger`` or croniter: APScheduler 3.11's CronTrigger, asked for
the fire time after 02:00 CET on a fall-back night (``0 * * * *`` in Europe/Berlin), returns
that same instant again and again, so a sweeper walking fire times would never advance;
croniter is unmaintained since 2025. The walk below is small, has one documented DST rule,
and is checked by property-based tests over Berlin, New York and Moscow.

The DST rule is wall-clock cron semantics (what Vixie cron does for fixed-time jobs):

* every matching local wall-clock time fires **once**; in a repeated hour (fall back) the
  first occurrence fires, the repeat does not - nothing is invented;
* a matching wall-clock time that does not exist (spring forward) fires at the first
  instant after the gap (03:00 CEST for 02:30 on the last Sunday of March), unless another
  run already fires at that instant - nothing is hidden.

Jobs that must run every N seconds of elapsed time, whatever the clock says, use an
interval schedule instead.

Expressions fire at most once a minute (5 fields; a 6th "seconds" field is refused with a
message), so a monitor never expects more than one check-in per minute.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

#: How far ahead a fire time is searched for. 0 0 29 2 * needs up to 8 years (2096->2104).
SEARCH_YEARS = 9

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
#: (low, high, names) per field; day of week accepts 7 as Sunday.
BOUNDS: tuple[tuple[int, int, list[str] | None], ...] = (
    (0, 59, None),
    (0, 23, None),
    (1, 31, None),
    (1, 12, MONTHS),
    (0, 7, DAYS),
)


class ScheduleError(ValueError):
    """An expression or time zone that cannot be used; the message says which part."""


@functools.cache
def zone_names() -> frozenset[str]:
    """The IANA zones a monitor may use (also the ``enum`` of ``timezone`` in OpenAPI)."""
    return frozenset(available_timezones())


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, or a ScheduleError naming it."""
    if name not in zone_names():
        raise ScheduleError(f"unknown time zone {name[:64]!r} (an IANA name, e.g. Europe/Berlin)")
    return ZoneInfo(name)


def _ci(word: str) -> str:
    return "".join(f"[{c}{c.upper()}]" for c in word)


def _field_pattern(value: str) -> str:
    part = rf"(?:\*|{value}(?:-{value})?)(?:/[1-9][0-9]{{0,2}})?"
    return rf"{part}(?:,{part})*"


#: The accepted syntax as one regular expression, valid in Python and in ECMA-262, so the
#: OpenAPI ``pattern`` of ``cron`` is exactly what the parser accepts (numbers 1-2 digits,
#: steps 1-999, names in any case, ranges may wrap: ``fri-mon``, ``22-2``).
CRON_PATTERN = (
    "^(?:"
    + " +".join(
        _field_pattern(v)
        for v in (
            "[0-5]?[0-9]",
            "(?:[01]?[0-9]|2[0-3])",
            "(?:0?[1-9]|[12][0-9]|3[01])",
            "(?:0?[1-9]|1[0-2]|" + "|".join(_ci(m) for m in MONTHS) + ")",
            "(?:0?[0-7]|" + "|".join(_ci(d) for d in DAYS) + ")",
        )
    )
    + "|@(?:yearly|annually|monthly|weekly|daily|midnight|hourly))$"
)
_CRON_RE = re.compile(CRON_PATTERN)


def _value(token: str, index: int) -> int:
    low, high, names = BOUNDS[index]
    lowered = token.lower()
    if names is not None and lowered in names:
        return names.index(lowered) + (1 if index == 3 else 0)
    if not token.isascii() or not token.isdigit() or len(token) > 2:
        raise ScheduleError(f"{FIELD_NAMES[index]}: {token[:20]!r} is not a number")
    number = int(token)
    if not low <= number <= high:
        raise ScheduleError(f"{FIELD_NAMES[index]}: {number} is outside {low}-{high}")
    return number


def _field(text: str, index: int) -> frozenset[int]:
    low, high, _ = BOUNDS[index]
    values: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not re.fullmatch("[0-9]{1,3}", step_text):
                raise ScheduleError(
                    f"{FIELD_NAMES[index]}: step {step_text[:20]!r} is not a number 1-999"
                )
            step = int(step_text)
            if step < 1 or step_text.startswith("0"):
                raise ScheduleError(f"{FIELD_NAMES[index]}: step must be 1-999")
        if rng == "*":
            start, end = low, high
        elif "-" in rng:
            a, _, b = rng.partition("-")
            start, end = _value(a, index), _value(b, index)
        else:
            start = _value(rng, index)
            end = high if step_text else start
        if start <= end:
            values.update(range(start, end + 1, step))
        else:  # a range that wraps: fri-mon, 22-2
            span = list(range(start, high + 1)) + list(range(low, end + 1))
            values.update(span[::step])
    if index == 4 and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


@dataclass(frozen=True)
class CronExpression:
    """A parsed 5-field cron expression (minute hour day-of-month month day-of-week)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    #: Vixie cron: when both day fields are restricted, a day matching either fires.
    day_or: bool

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        if not isinstance(text, str) or not text.strip():
            raise ScheduleError("cron expression is empty")
        if len(text) > 256:
            raise ScheduleError("cron expression is longer than 256 characters")
        source = text
        expanded = MACROS.get(source, source)
        if expanded.startswith("@"):
            raise ScheduleError(f"unknown macro {source[:20]!r} (use {', '.join(MACROS)})")
        parts = expanded.split()
        if len(parts) == 6:
            raise ScheduleError(
                "6 fields: a seconds field would fire more than once a minute; "
                "monitors take 5-field expressions (minute hour day month weekday)"
            )
        if len(parts) != 5:
            raise ScheduleError(
                f"expected 5 fields (minute hour day month weekday), got {len(parts)}"
            )
        fields = [_field(part, i) for i, part in enumerate(parts)]
        if not _CRON_RE.fullmatch(source):
            raise ScheduleError(
                "not a cron expression: fields are separated by spaces, without leading or "
                "trailing blanks; use *, numbers, names, ranges, lists and /steps"
            )
        return cls(
            text=source,
            minutes=fields[0],
            hours=fields[1],
            days=fields[2],
            months=fields[3],
            weekdays=fields[4],
            day_or=not parts[2].startswith("*") and not parts[4].startswith("*"),
        )

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        return (dom or dow) if self.day_or else (dom and dow)

    def wall_times(self, start: datetime) -> Iterator[datetime]:
        """Matching naive wall-clock times from ``start`` (a naive minute) on, in order."""
        day = start.date()
        end = day + timedelta(days=366 * SEARCH_YEARS)
        hours = sorted(self.hours)
        minutes = sorted(self.minutes)
        first = True
        while day <= end:
            if self.matches_day(day):
                for h in hours:
                    if first and h < start.hour:
                        continue
                    for m in minutes:
                        if first and h == start.hour and m < start.minute:
                            continue
                        yield datetime(day.year, day.month, day.day, h, m)
            first = False
            day += timedelta(days=1)


def _gap_end(wall: datetime, tz: ZoneInfo) -> datetime | None:
    """For a wall time inside a DST gap, the first instant after the gap; else None."""
    early = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    late = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if early.astimezone(tz).replace(tzinfo=None) == wall:
        return None  # the wall time exists (fold=1 is the repeat or the same instant)
    # The transition lies in (early, late]: binary search on whole seconds.
    after_offset = late.astimezone(tz).utcoffset()
    lo, hi = early, late
    while (hi - lo) > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(tz).utcoffset() == after_offset and mid > early:
            hi = mid
        else:
            lo = mid
    return hi


def instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant a matching wall-clock time fires at (the module's DST rule)."""
    gap_end = _gap_end(wall, tz)
    if gap_end is not None:
        return gap_end
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def next_fire(expr: CronExpression, tz: ZoneInfo, after: datetime) -> datetime | None:
    """The first fire time strictly after ``after`` (aware), in UTC; None if there is none
    within SEARCH_YEARS."""
    after = after.astimezone(UTC)
    local = after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0, fold=0)
    # instant() never decreases as the wall time grows, and instant(local) <= after, so no
    # wall time before ``local`` can fire after ``after``.
    for wall in expr.wall_times(local):
        at = instant(wall, tz)
        if at > after:
            return at
    return None


@dataclass(frozen=True)
class Schedule:
    """A monitor's schedule: a cron expression in a zone, or a fixed interval."""

    cron: CronExpression | None
    interval_seconds: int | None
    tz: ZoneInfo

    @classmethod
    def build(cls, cron: str | None, interval_seconds: int | None, timezone: str) -> Schedule:
        tz = zone(timezone)
        if (cron is None) == (interval_seconds is None):
            raise ScheduleError("give exactly one of cron and interval_seconds")
        if cron is not None:
            parsed = CronExpression.parse(cron)
            probe = datetime(2026, 1, 1, tzinfo=UTC)
            if next_fire(parsed, tz, probe) is None:
                raise ScheduleError(f"cron expression {cron[:64]!r} never fires")
            return cls(parsed, None, tz)
        assert interval_seconds is not None
        if interval_seconds < 60:
            raise ScheduleError(
                f"interval_seconds {interval_seconds} fires more than once a minute; "
                "the minimum is 60"
            )
        return cls(None, interval_seconds, tz)

    def next_after(self, after: datetime) -> datetime | None:
        """The next expected run after ``after`` (for an interval: ``after`` + interval)."""
        if self.cron is not None:
            return next_fire(self.cron, self.tz, after)
        assert self.interval_seconds is not None
        return after.astimezone(UTC) + timedelta(seconds=self.interval_seconds)

    def describe(self) -> str:
        if self.cron is None:
            return f"every {_duration_words(self.interval_seconds or 0)}"
        return describe_cron(self.cron, str(self.tz.key))


def _duration_words(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}" if n != 1 else unit
    return f"{seconds} seconds"


def _list(values: frozenset[int], names: list[str] | None = None) -> str:
    shown = [names[v] if names else str(v) for v in sorted(values)]
    return ", ".join(shown[:6]) + (" ..." if len(shown) > 6 else "")


def describe_cron(expr: CronExpression, tz_name: str) -> str:
    """Schedule in words for the admin page ("at 09:00 on Mon, Tue (Europe/Berlin)")."""
    all_minutes = len(expr.minutes) == 60
    all_hours = len(expr.hours) == 24
    if all_minutes and all_hours:
        when = "every minute"
    elif all_hours and len(expr.minutes) == 1:
        when = f"every hour at minute {min(expr.minutes)}"
    elif len(expr.hours) * len(expr.minutes) <= 4:
        times = [f"{h:02d}:{m:02d}" for h in sorted(expr.hours) for m in sorted(expr.minutes)]
        when = "at " + ", ".join(times)
    else:
        when = f"at minute {_list(expr.minutes)} of hour {_list(expr.hours)}"
    parts = [when]
    if len(expr.days) != 31:
        parts.append(f"on day {_list(expr.days)} of the month")
    if len(expr.weekdays) != 7:
        names = [d.capitalize() for d in DAYS]
        parts.append(("or" if expr.day_or else "on") + f" {_list(expr.weekdays, names)}")
    if len(expr.months) != 12:
        names = ["", *[m.capitalize() for m in MONTHS]]
        parts.append(f"in {_list(expr.months, names)}")
    return " ".join(parts) + f" ({tz_name})"
