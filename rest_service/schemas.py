"""API payloads: what clients send and what the API returns (documented in OpenAPI).

Every string is length-bounded and may not contain NUL (Postgres text cannot hold it), ids
are 1..128 characters, integers that reach a BIGINT column are range-checked, timestamps lie
between 2000-01-01 and now + MAX_CLOCK_SKEW_SECONDS, and enums are closed: anything else is
a 422 that names the field. Unknown extra keys are ignored so an older rest_service accepts
events from a newer shipper.

The bounds of the ingest events come from ``otel_assist.history.wire``, the one definition
the shipper checks its events against too, so both ends agree on every range.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    model_validator,
)
from typing_extensions import TypedDict

from otel_assist.history import wire
from rest_service.core import ids
from rest_service.models import JobStatus, QueueDirection

NO_NUL = r"^[^\x00]*$"
#: Integer ids (user_id, reminder_id) are limited to the JSON-safe range ±(2^53 - 1): every
#: JSON parser (and every JSON Schema validator, which compare as doubles) represents them
#: exactly, and they still fit the BIGINT columns. One definition (otel_assist.history.wire)
#: shared with the shipper and the queue envelope, so a valid envelope is a storable row.
INT64_MIN = wire.INT_ID_MIN
INT64_MAX = wire.INT_ID_MAX


def _lower_bounded_utc(value: datetime) -> datetime:
    """Aware UTC, and not before 2000-01-01. The upper bound (now + MAX_CLOCK_SKEW_SECONDS)
    depends on the settings, so the ingest routes check it (``check_event_times``)."""
    try:
        utc = wire.to_utc(value)
    except ValueError:
        raise ValueError(wire.time_bounds_message()) from None
    if utc < wire.EARLIEST:
        raise ValueError(wire.time_bounds_message())
    return utc


Id = Annotated[str, StringConstraints(min_length=1, max_length=wire.ID_MAX, pattern=NO_NUL)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=wire.NAME_MAX, pattern=NO_NUL)]
LongName = Annotated[
    str, StringConstraints(min_length=1, max_length=wire.LONG_NAME_MAX, pattern=NO_NUL)
]
ShortText = Annotated[str, StringConstraints(max_length=wire.SHORT_TEXT_MAX, pattern=NO_NUL)]
#: The library's correlation-id charset (otel_assist.correlation.is_valid, through
#: core.ids): ids end up in admin links and log metadata, so others are refused with 422.
#: The whole rule is one pattern, checked by pydantic-core without a Python call per value
#: (a Python validator here cost about 0.7 ms per 1,000-event batch, bench/ingest_throughput):
#: charset characters only, at least one of them not a dot. The OpenAPI schema states the
#: rule exactly, and a refusal reads ``ids.CORRELATION_ID_RULE`` (``friendly_message``).
CORRELATION_ID_PATTERN = r"^[A-Za-z0-9._:\-]*[A-Za-z0-9_:\-][A-Za-z0-9._:\-]*$"
CorrelationId = Annotated[
    str, StringConstraints(max_length=wire.CORRELATION_ID_MAX, pattern=CORRELATION_ID_PATTERN)
]
JobName = Annotated[str, StringConstraints(max_length=wire.LONG_NAME_MAX, pattern=NO_NUL)]
MessageType = Annotated[
    str, StringConstraints(min_length=1, max_length=wire.SHORT_TEXT_MAX, pattern=NO_NUL)
]
#: Free text (errors, tracebacks, results): bounded by the request body limit; the
#: service truncates anything above MAX_PAYLOAD_BYTES with a visible marker.
FreeText = Annotated[str, StringConstraints(pattern=NO_NUL)]


def json_integer(value: Any) -> Any:
    """What JSON Schema's ``integer`` accepts: integers and integral numbers (``3.0``), not
    booleans or strings. Pydantic's lax mode would store ``true`` as user_id 1 and ``"42"``
    as 42; its strict mode would refuse ``3.0``, which the schema allows."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a JSON integer (not a boolean or a string)")
    return value


# Field before the validator: in the other order the bounds vanish from the OpenAPI schema.
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX), BeforeValidator(json_integer)]
DurationMs = Annotated[int, Field(ge=0, le=wire.DURATION_MS_MAX), BeforeValidator(json_integer)]
#: An event time: ISO 8601 (naive means UTC) or unix seconds, from 2000-01-01 to
#: now + MAX_CLOCK_SKEW_SECONDS; stored as aware UTC.
WireTime = Annotated[datetime, AfterValidator(_lower_bounded_utc)]
#: A queue event's time, on the hot ingest path (a batch carries up to 1,000 events with
#: two times each): the lower bound is checked by pydantic-core itself (it compares a
#: naive value as UTC), so no Python runs per value; the value keeps the offset it was
#: given. ``crud.queues.event_rows`` converts it to UTC and applies the upper bound (now +
#: MAX_CLOCK_SKEW_SECONDS) in its one pass over the batch. The Python validator of
#: ``WireTime`` cost about 4 ms per 1,000-event batch (bench/ingest_throughput).
EventTime = Annotated[datetime, Field(ge=wire.EARLIEST)]


def friendly_message(error: Mapping[str, Any]) -> str | None:
    """The message for a validation error of one of the bounds above that pydantic-core
    checks natively (its own text would name a regex or an ISO date); None otherwise."""
    ctx = error.get("ctx") or {}
    kind = error.get("type")
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == CORRELATION_ID_PATTERN:
        return f"correlation_id must be {ids.CORRELATION_ID_RULE}"
    if kind == "greater_than_equal" and _is_earliest(ctx.get("ge")):
        return wire.time_bounds_message()
    return None


def _is_earliest(bound: object) -> bool:
    if isinstance(bound, datetime):
        return bound == wire.EARLIEST
    if not isinstance(bound, str):
        return False
    try:
        return datetime.fromisoformat(bound.replace("Z", "+00:00")) == wire.EARLIEST
    except ValueError:
        return False


class JobEventKind(StrEnum):
    SCHEDULED = "scheduled"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    MISSED = "missed"
    SKIPPED = "skipped"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class JobEvent(_In):
    """One lifecycle event of one run. Events of a run may arrive in any order, repeatedly."""

    event_id: Id = Field(description="Unique per event; the shipper's idempotency key.")
    run_id: Id = Field(description="Pairs the events of one run (scheduled/started/finished).")
    job_id: LongName = Field(description="APScheduler job id, e.g. reminder_123.")
    job_name: JobName | None = None
    job_type: Name = Field(description="reminder, memory_extraction, update_reminders, ...")
    kind: JobEventKind
    at: WireTime = Field(description="When it happened (ISO 8601; naive means UTC).")
    duration_ms: DurationMs | None = Field(
        default=None, description="For completed/failed/timed_out; else computed from times."
    )
    user_id: Int64 | None = None
    reminder_id: Int64 | None = None
    error: FreeText | None = None
    traceback: FreeText | None = None
    result: FreeText | None = None
    correlation_id: CorrelationId | None = None


class JobEventBatch(_In):
    """A batch of job lifecycle events (at most MAX_BATCH_EVENTS; more is a 413)."""

    events: list[JobEvent]


class JobEventBatchResult(BaseModel):
    received: int = Field(description="Events in the request.")
    runs: int = Field(description="Distinct runs the events touched.")


class QueueEvent(_In):
    """One push or pop of a queue message. ``event_id`` (else ``message_id:direction``)
    identifies it: a re-sent event is ignored."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "anyOf": [
                {"required": ["event_id"], "properties": {"event_id": {"type": "string"}}},
                {"required": ["message_id"], "properties": {"message_id": {"type": "string"}}},
            ]
        },
    )

    event_id: Id | None = None
    message_id: Id | None = Field(default=None, description="The envelope's id.")
    queue_name: Name
    direction: QueueDirection
    message_type: MessageType = "unknown"
    source: ShortText | None = None
    user_id: Int64 | None = None
    correlation_id: CorrelationId | None = None
    payload: Any = Field(
        default=None,
        description="Any JSON value; stored as JSON text, truncated above MAX_PAYLOAD_BYTES "
        "with a marker and payload_truncated=true.",
    )
    enqueued_at: EventTime | None = None
    dequeued_at: EventTime | None = None
    at: EventTime | None = Field(
        default=None, description="Event time if neither enqueued_at nor dequeued_at fits."
    )

    @model_validator(mode="after")
    def _needs_identity(self) -> QueueEvent:
        if self.event_id is None and self.message_id is None:
            raise ValueError("event_id or message_id is required")
        return self

    @property
    def key(self) -> str:
        return self.event_id or f"{self.message_id}:{self.direction.value}"


class QueueEventBatch(_In):
    """A batch of queue events (at most MAX_BATCH_EVENTS; more is a 413)."""

    events: list[QueueEvent]


def _has_identity(event: QueueEventFields) -> QueueEventFields:
    """``QueueEvent._needs_identity`` for the dict form."""
    if event["event_id"] is None and event["message_id"] is None:
        raise ValueError("event_id or message_id is required")
    return event


# ``QueueEventFields``' validation (below) reads a NUL-free body: the same fields and bounds
# as ``QueueEvent`` without the two per-value checks that are not free in pydantic-core,
# used only where they cannot fail. The NUL pattern on five strings per event is left out,
# and a body is read this way only when it holds no NUL at all (``api/body.py``
# ``nul_free``: no raw 0x00 and no ``\u0000`` escape, JSON has no other way to write one).
# user_id is a strict JSON integer: no Python call per value (``json_integer``); anything
# else it refuses (42.0, which QueueEvent accepts as 42, a boolean, a string) sends the
# body through ``QueueEventBatch``, which decides and words the 422. So it accepts a subset
# of what ``QueueEventBatch`` accepts, with the same values (tests/rest_service/
# test_ingest_fast_paths.py), as dicts: no model instance per event. In-process, 1,000
# events: 2.8 ms (``QueueEventBatch``) -> 1.7 ms.
_AnyId = Annotated[str, StringConstraints(min_length=1, max_length=wire.ID_MAX)]
_AnyName = Annotated[str, StringConstraints(min_length=1, max_length=wire.NAME_MAX)]
_AnyShortText = Annotated[str, StringConstraints(max_length=wire.SHORT_TEXT_MAX)]
_AnyMessageType = Annotated[str, StringConstraints(min_length=1, max_length=wire.SHORT_TEXT_MAX)]
_StrictInt64 = Annotated[int, Strict(), Field(ge=INT64_MIN, le=INT64_MAX)]


class QueueEventFields(TypedDict):
    """A validated queue event as a dict with every field of ``QueueEvent`` (what a
    ``QueueEvent``'s ``__dict__`` holds, see ``event_fields``): the form the ingest code
    reads. Its annotations are the NUL-free reading of a body (see above)."""

    event_id: Annotated[_AnyId | None, Field(default=None)]
    message_id: Annotated[_AnyId | None, Field(default=None)]
    queue_name: _AnyName
    direction: QueueDirection
    message_type: Annotated[_AnyMessageType, Field(default="unknown")]
    source: Annotated[_AnyShortText | None, Field(default=None)]
    user_id: Annotated[_StrictInt64 | None, Field(default=None)]
    correlation_id: Annotated[CorrelationId | None, Field(default=None)]
    payload: Annotated[Any, Field(default=None)]
    enqueued_at: Annotated[EventTime | None, Field(default=None)]
    dequeued_at: Annotated[EventTime | None, Field(default=None)]
    at: Annotated[EventTime | None, Field(default=None)]


class QueueEventBatchNulFree(TypedDict):
    """``QueueEventBatch`` read from a body without NUL (see ``QueueEventFields``)."""

    events: list[Annotated[QueueEventFields, AfterValidator(_has_identity)]]


#: Reads a NUL-free batch body (``api/body.py`` ``validate_nul_free``).
QUEUE_EVENT_BATCH_NUL_FREE = TypeAdapter(QueueEventBatchNulFree)


def event_fields(event: QueueEvent) -> QueueEventFields:
    """A ``QueueEvent`` as ``QueueEventFields``: its ``__dict__`` holds every field (extra
    keys are ignored, never stored), so no copy is made."""
    return cast(QueueEventFields, event.__dict__)


class QueueEventBatchResult(BaseModel):
    received: int
    inserted: int = Field(description="New rows; the rest were already stored.")
    duplicates: int


class JobExecutionCreate(_In):
    """Create a run in state ``scheduled`` (the single-call API; the batch is preferred)."""

    job_id: LongName
    job_name: JobName | None = None
    job_type: Name
    run_id: Id | None = Field(default=None, description="Defaults to the new row's id.")
    scheduled_at: WireTime | None = Field(default=None, description="Defaults to now.")
    user_id: Int64 | None = None
    reminder_id: Int64 | None = None
    correlation_id: CorrelationId | None = None


class JobStart(_In):
    at: WireTime | None = Field(default=None, description="Defaults to now.")


class JobComplete(_In):
    at: WireTime | None = Field(default=None, description="Defaults to now.")
    result: FreeText | None = None
    duration_ms: DurationMs | None = None


class JobFail(_In):
    at: WireTime | None = Field(default=None, description="Defaults to now.")
    error: FreeText
    traceback: FreeText | None = None
    duration_ms: DurationMs | None = None


class JobExecutionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    run_id: str
    job_id: str
    job_name: str
    job_type: str
    status: JobStatus
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    user_id: int | None
    reminder_id: int | None
    correlation_id: str | None
    result: str | None
    error: str | None
    error_traceback: str | None
    created_at: datetime
    updated_at: datetime


class JobTypeStats(BaseModel):
    total: int = 0
    scheduled: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    missed: int = 0
    skipped: int = 0
    timed_out: int = 0
    cancelled: int = 0
    stuck: int = Field(default=0, description="Running longer than stuck_after_minutes.")
    avg_duration_ms: float | None = None


class JobStats(JobTypeStats):
    hours: int
    since: datetime
    p95_duration_ms: float | None = None
    p95_exact: bool = Field(
        default=True,
        description="false when the window held more finished runs than "
        "EXACT_PERCENTILE_LIMIT and the p95 was read from the hourly histogram (<5% error).",
    )
    by_type: dict[str, JobTypeStats] = Field(
        default_factory=dict, description="The types_limit job types with the most runs."
    )
    types_total: int = Field(default=0, description="Job types with runs in the window.")
    other_types: int = Field(
        default=0, description="Job types with runs in the window left out of by_type."
    )


class QueueMessagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    event_id: str
    message_id: str | None
    queue_name: str
    direction: QueueDirection
    message_type: str
    source: str | None
    user_id: int | None
    correlation_id: str | None
    payload: str | None
    payload_truncated: bool
    enqueued_at: datetime | None
    dequeued_at: datetime | None
    created_at: datetime


class QueueStats(BaseModel):
    """One queue's history counts. The plan's names count messages, that is pushes; pops
    and what is still in flight are given separately (issue 17 §3)."""

    queue_name: str
    total_messages: int = Field(description="Messages pushed, all retained time.")
    messages_last_hour: int = Field(description="Messages pushed in the last hour.")
    messages_last_24h: int = Field(description="Messages pushed in the last 24 h.")
    by_type: dict[str, int] = Field(description="Messages pushed in the last 24 h, by type.")
    by_source: dict[str, int] = Field(
        description="Messages pushed in the last 24 h, by source ('unknown' when absent)."
    )
    pushed: int = Field(description="Same as total_messages (kept for older clients).")
    popped: int = Field(description="Pops logged, all retained time.")
    pops_last_hour: int = Field(default=0, description="Pops logged in the last hour.")
    pops_last_24h: int = Field(default=0, description="Pops logged in the last 24 h.")
    in_flight: int = Field(
        default=0,
        description="Pushes minus pops over the retained history, never below 0 (the live "
        "queue length is /queue-stats/current).",
    )
    by_direction: dict[str, int] = Field(description="Pushes and pops in the last 24 h.")


class QueueCurrent(BaseModel):
    queue_name: str
    length: int
    oldest_message_age_seconds: float | None = Field(
        description="From the oldest message's envelope enqueued_at; null when the queue is "
        "empty or the oldest message is a legacy (non-envelope) message."
    )
    oldest_is_legacy: bool = False


class MemoryCreate(_In):
    user_id: Int64
    content: Annotated[str, StringConstraints(min_length=1, max_length=20_000, pattern=NO_NUL)]
    source: ShortText | None = None


class MemoryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: int
    content: str
    source: str | None
    created_at: datetime
    updated_at: datetime


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """422: the fields at fault (``loc`` names them) and why."""

    detail: list[ValidationIssue]


class ErrorBody(BaseModel):
    """Every error response: a human-readable message (and, for 422, the failing fields)."""

    detail: Any
