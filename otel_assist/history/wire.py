"""Where the history wire format is defined: the fields of a job or queue event, their
types, bounds and maximum lengths, in one place for both ends.

The shipper (``otel_assist.history``) checks every event against these definitions before
it sends it, and rest_service's request models (``rest_service/schemas.py``) are built from
the same constants, so an event the shipper sends is an event rest_service accepts: the two
can no longer disagree about a range (they once did: the envelope allowed an int64
``user_id``, rest_service only ±(2^53 - 1), and such events were refused whole). The queue
envelope takes its bounds from here too.

Bounds (both ends):

* ids (``event_id``, ``run_id``, ``message_id``): 1..128 characters;
* names: ``queue_name``/``job_type`` 1..128, ``job_id`` 1..256, ``job_name`` 0..256,
  ``message_type`` 1..64, ``source`` 0..64, ``correlation_id`` 0..128;
* ``user_id``, ``reminder_id``: ±(2^53 - 1), the JSON-safe integers (the envelope's range
  too);
* ``duration_ms``: 0..10^12;
* timestamps: no earlier than 2000-01-01T00:00:00Z, no later than now + the allowed clock
  skew (rest_service's ``MAX_CLOCK_SKEW_SECONDS``, default 300 s); ISO 8601 text (naive
  means UTC) or unix seconds;
* no string may hold NUL or a lone surrogate (neither fits a Postgres text column).

Pure Python, no pydantic: the library must not depend on the app's validation stack.

:func:`clean` is the shipper's side. It never raises. A bad *optional* field is repaired
or dropped (the event still travels) and reported; a bad *required* field makes the whole
event undeliverable, and the caller sets it aside (the dead-letter file) instead of
letting it take a batch down with it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from otel_assist import correlation

# ----------------------------------------------------------------------------- bounds

#: Integer ids (user_id, reminder_id): the JSON-safe range. Every JSON parser, and JSON
#: Schema tooling that compares numbers as doubles (a fuzzer generated 2^63 as "at most
#: 2^63 - 1"), reads them exactly; they fit the BIGINT columns; Telegram ids stay below
#: 2^52.
INT_ID_MIN = -(2**53 - 1)
INT_ID_MAX = 2**53 - 1
ID_MAX = 128
NAME_MAX = 128
LONG_NAME_MAX = 256
SHORT_TEXT_MAX = 64
CORRELATION_ID_MAX = 128
DURATION_MS_MAX = 10**12
#: error / traceback / result text the shipper sends at most (UTF-8 bytes); rest_service
#: truncates further to its MAX_PAYLOAD_BYTES. Keeps one event far below MAX_BODY_BYTES.
FREE_TEXT_MAX_BYTES = 256 * 1024
#: nesting of a queue payload the shipper keeps; deeper values become a marker string
#: (rest_service's JSON parser refuses documents nested much deeper than this).
PAYLOAD_MAX_DEPTH = 64
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
EARLIEST_TS = EARLIEST.timestamp()
DEFAULT_MAX_CLOCK_SKEW_S = 300
JOB_KINDS = (
    "scheduled",
    "started",
    "completed",
    "failed",
    "missed",
    "skipped",
    "timed_out",
    "cancelled",
)
DIRECTIONS = ("push", "pop")
TRUNCATED_MARK = "…[truncated {n} bytes]"

FieldType = Literal["id", "text", "int", "time", "enum", "json", "correlation_id"]
Kind = Literal["job", "queue"]


@dataclass(frozen=True, slots=True)
class WireField:
    """One field of an event on the wire."""

    name: str
    type: FieldType
    required: bool = False
    min_len: int = 0
    max_len: int | None = None
    lo: int = INT_ID_MIN
    hi: int = INT_ID_MAX
    choices: tuple[str, ...] = ()


JOB_FIELDS: tuple[WireField, ...] = (
    WireField("event_id", "id", True, 1, ID_MAX),
    WireField("run_id", "id", True, 1, ID_MAX),
    WireField("job_id", "text", True, 1, LONG_NAME_MAX),
    WireField("job_name", "text", False, 0, LONG_NAME_MAX),
    WireField("job_type", "text", True, 1, NAME_MAX),
    WireField("kind", "enum", True, choices=JOB_KINDS),
    WireField("at", "time", True),
    WireField("duration_ms", "int", lo=0, hi=DURATION_MS_MAX),
    WireField("user_id", "int"),
    WireField("reminder_id", "int"),
    WireField("error", "text", max_len=None),
    WireField("traceback", "text", max_len=None),
    WireField("result", "text", max_len=None),
    WireField("correlation_id", "correlation_id", False, 0, CORRELATION_ID_MAX),
)

QUEUE_FIELDS: tuple[WireField, ...] = (
    WireField("event_id", "id", True, 1, ID_MAX),
    WireField("message_id", "id", False, 1, ID_MAX),
    WireField("queue_name", "text", True, 1, NAME_MAX),
    WireField("direction", "enum", True, choices=DIRECTIONS),
    WireField("message_type", "text", False, 1, SHORT_TEXT_MAX),
    WireField("source", "text", False, 0, SHORT_TEXT_MAX),
    WireField("user_id", "int"),
    WireField("correlation_id", "correlation_id", False, 0, CORRELATION_ID_MAX),
    WireField("payload", "json"),
    WireField("enqueued_at", "time"),
    WireField("dequeued_at", "time"),
    WireField("at", "time"),
)

FIELDS: dict[str, tuple[WireField, ...]] = {"job": JOB_FIELDS, "queue": QUEUE_FIELDS}
_NAMES = {kind: frozenset(f.name for f in fields) for kind, fields in FIELDS.items()}


# ----------------------------------------------------------------------------- time


def time_bounds_message(max_skew_s: float | None = None) -> str:
    skew = "MAX_CLOCK_SKEW_SECONDS" if max_skew_s is None else f"{max_skew_s:g} s"
    return f"timestamp out of range: must be between 2000-01-01T00:00:00Z and now + {skew}"


def to_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; naive means UTC. Raises ValueError when the
    conversion leaves datetime's range (``9999-12-31T23:59:59-01:00``), where
    ``astimezone`` would raise OverflowError."""
    offset = value.utcoffset()
    if offset is None:
        return value.replace(tzinfo=UTC)
    try:
        return (value.replace(tzinfo=None) - offset).replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("out of range") from None


def check_time(value: datetime, max_skew_s: float, now: datetime | None = None) -> datetime:
    """The timestamp in UTC if it lies in [2000-01-01, now + skew]; else ValueError."""
    try:
        utc = to_utc(value)
    except ValueError:
        raise ValueError(time_bounds_message(max_skew_s)) from None
    now = now or datetime.now(UTC)
    if utc < EARLIEST or utc > now + timedelta(seconds=max_skew_s):
        raise ValueError(time_bounds_message(max_skew_s))
    return utc


def _time_value(value: Any, max_skew_s: float, now_ts: float) -> Any:
    """A wire timestamp (unix seconds, datetime or ISO text) kept as given if valid, else
    ValueError."""
    if isinstance(value, bool):
        raise ValueError("not a timestamp")
    if isinstance(value, int | float):
        ts = float(value)
        if not math.isfinite(ts) or ts < EARLIEST_TS or ts > now_ts + max_skew_s:
            raise ValueError(time_bounds_message(max_skew_s))
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("not an ISO 8601 timestamp") from None
        check_time(parsed, max_skew_s, datetime.fromtimestamp(now_ts, UTC))
        return value
    if isinstance(value, datetime):
        return check_time(value, max_skew_s, datetime.fromtimestamp(now_ts, UTC)).isoformat()
    raise ValueError("not a timestamp")


# ----------------------------------------------------------------------------- text


def clean_text(value: str) -> str:
    """Lone surrogates escaped (``\\udcff`` -> ``\\\\udcff``), NUL escaped as ``\\\\x00``:
    deterministic, so an id cleaned twice is the same id (idempotency holds)."""
    if "\x00" in value:
        value = value.replace("\x00", "\\x00")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _shorten_id(value: str) -> str:
    """An over-long id, shortened without losing uniqueness (prefix + hash)."""
    digest = hashlib.sha256(value.encode("utf-8", "backslashreplace")).hexdigest()[:32]
    return value[: ID_MAX - 33] + "~" + digest


def _truncate_bytes(value: str, max_bytes: int) -> str:
    data = value.encode("utf-8")
    if len(data) <= max_bytes:
        return value
    mark = TRUNCATED_MARK.format(n=len(data) - max_bytes)
    return data[:max_bytes].decode("utf-8", "ignore") + mark


# ----------------------------------------------------------------------------- json


def json_safe(value: Any, depth: int = 0) -> Any:
    """Any payload made JSON-encodable: strings cleaned, ints past 64 bits and other odd
    scalars as text, non-finite floats as null, keys as text, any Mapping as an object,
    sets/tuples as arrays, nesting beyond PAYLOAD_MAX_DEPTH as a marker string."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= PAYLOAD_MAX_DEPTH:
        return f"…[nested deeper than {PAYLOAD_MAX_DEPTH} levels]"
    if isinstance(value, Mapping):
        return {clean_text(str(k)): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, bytes | bytearray):
        return clean_text(bytes(value).decode("utf-8", "replace"))
    try:
        return clean_text(str(value))
    except Exception:
        return f"<unprintable {type(value).__name__}>"


# ----------------------------------------------------------------------------- events


@dataclass(slots=True)
class Cleaned:
    """What :func:`clean` made of one event.

    ``event`` is the event to send (None when it cannot be delivered), ``fixed`` the
    optional fields repaired or dropped, ``rejected`` the required field at fault."""

    event: dict[str, Any] | None
    fixed: list[tuple[str, str]] = field(default_factory=list)
    rejected: tuple[str, str] | None = None


def clean(
    kind: Kind,
    event: Mapping[str, Any],
    *,
    max_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S,
    now_ts: float,
) -> Cleaned:
    """Check one event against the wire schema and repair what can be repaired.

    Never raises. Unknown keys are passed on (rest_service ignores them) after being made
    JSON-safe; so is the queue ``payload``."""
    try:
        return _clean(kind, event, max_skew_s, now_ts)
    except Exception as exc:  # a Mapping whose items() raises, and the like
        return Cleaned(None, rejected=("event", f"unreadable event: {type(exc).__name__}"))


def _clean(kind: Kind, event: Mapping[str, Any], max_skew_s: float, now_ts: float) -> Cleaned:
    out: dict[str, Any] = {}
    result = Cleaned(out)
    known = FIELDS[kind]
    names = _NAMES[kind]
    if not names.issuperset(event):  # extra keys (rare): passed on, JSON-safe
        for key, value in event.items():
            if not isinstance(key, str):
                result.fixed.append((clean_text(str(key)), "key is not text: dropped"))
                continue
            if key not in names:
                out[clean_text(key)] = json_safe(value)
    limit = now_ts + max_skew_s
    for spec in known:
        value = event.get(spec.name)
        if value is None:
            if spec.required:
                result.rejected = (spec.name, "required")
                result.event = None
                return result
            continue
        if _plainly_valid(spec, value, limit):
            out[spec.name] = value
            continue
        try:
            out[spec.name] = _field(spec, value, max_skew_s, now_ts, result)
        except ValueError as exc:
            if spec.required:
                result.rejected = (spec.name, str(exc))
                result.event = None
                return result
            result.fixed.append((spec.name, f"{exc}: dropped"))
    if kind == "queue" and "message_type" not in out:
        out["message_type"] = "unknown"
    return result


def _plainly_valid(spec: WireField, value: Any, limit_ts: float) -> bool:
    """The common case, decided without building anything: ASCII text within its
    lengths, an int in range, unix seconds in bounds. Anything else takes ``_field``."""
    t = type(value)
    kind = spec.type
    if t is str:
        if kind == "enum":
            return value in spec.choices
        if kind == "correlation_id":
            return correlation.is_valid(value)
        if kind == "time" or not value.isascii() or "\x00" in value:
            return False
        n = len(value)
        if kind == "json":
            return True
        return spec.min_len <= n <= (FREE_TEXT_MAX_BYTES if spec.max_len is None else spec.max_len)
    if t is int:
        return kind == "int" and spec.lo <= value <= spec.hi
    if t is float:
        return kind == "time" and EARLIEST_TS <= value <= limit_ts
    return False


def _field(spec: WireField, value: Any, max_skew_s: float, now_ts: float, result: Cleaned) -> Any:
    if spec.type == "correlation_id":
        # Optional everywhere: an id outside the charset (which links and log labels rely
        # on) is dropped from the event, which is still delivered.
        if isinstance(value, str) and correlation.is_valid(value):
            return value
        raise ValueError("not a valid correlation id (1 to 128 of A-Z a-z 0-9 . _ : -)")
    if spec.type in ("id", "text", "enum"):
        if not isinstance(value, str):
            raise ValueError(f"not a string ({type(value).__name__})")
        text = clean_text(value)
        if text != value:
            result.fixed.append((spec.name, "NUL or lone surrogate escaped"))
        if spec.type == "enum":
            if text not in spec.choices:
                raise ValueError(f"not one of {', '.join(spec.choices)}")
            return text
        if len(text) < spec.min_len:
            raise ValueError(f"shorter than {spec.min_len}")
        if spec.max_len is None:
            short = _truncate_bytes(text, FREE_TEXT_MAX_BYTES)
        elif len(text) <= spec.max_len:
            short = text
        elif spec.type == "id":
            short = _shorten_id(text)
        else:
            short = text[: spec.max_len]
        if short is not text:
            result.fixed.append((spec.name, "too long: shortened"))
        return short
    if spec.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"not an integer ({type(value).__name__})")
        if not spec.lo <= value <= spec.hi:
            raise ValueError(f"outside {spec.lo}..{spec.hi}")
        return int(value)
    if spec.type == "time":
        return _time_value(value, max_skew_s, now_ts)
    return json_safe(value)
