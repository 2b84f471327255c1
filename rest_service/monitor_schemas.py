"""Cron monitor payloads: what operators, the job tracker and check-in one-liners send.

The schedule is validated here, so a bad cron expression, an unknown time zone or a
schedule that would fire more than once a minute is a 422 naming the field (``cron``,
``timezone``, ``interval_seconds``) before anything reaches the database.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from rest_service.cron_schedule import (
    CRON_PATTERN,
    CronExpression,
    Schedule,
    ScheduleError,
    zone,
    zone_names,
)
from rest_service.schemas import NO_NUL, CorrelationId, Id, Name, json_integer

#: URL-safe: a slug sits in paths and in the ``monitor`` metric attribute.
SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
Slug = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=SLUG_PATTERN)]
WEEK_SECONDS = 7 * 86400


class MonitorState(StrEnum):
    """What the admin page and ``cron_monitor_status`` show (gauge values in STATE_VALUE)."""

    OK = "ok"
    LATE = "late"
    MISSED = "missed"
    FAILING = "failing"
    PAUSED = "paused"


#: cron_monitor_status values; paused is below ok so the worst state of a folded set is max.
STATE_VALUE: dict[MonitorState, int] = {
    MonitorState.PAUSED: -1,
    MonitorState.OK: 0,
    MonitorState.LATE: 1,
    MonitorState.MISSED: 2,
    MonitorState.FAILING: 3,
}


class CheckinStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    OK = "ok"
    ERROR = "error"


def _exact_schema(schema: dict[str, Any]) -> None:
    """OpenAPI says exactly what the validators accept (schemathesis holds us to it): one
    of ``cron`` / ``interval_seconds``, never null, cron syntax as a pattern, the zones as
    an enum."""
    props = schema.get("properties", {})
    props["cron"] = {
        "type": "string",
        "maxLength": 256,
        "pattern": CRON_PATTERN,
        "description": "5-field cron expression (or @hourly, @daily, ...), in ``timezone``.",
    }
    props["interval_seconds"] = {
        "type": "integer",
        "minimum": 60,
        "maximum": 366 * 86400,
        "description": "Instead of cron: every N seconds (at least 60).",
    }
    props["timezone"] = {
        "type": "string",
        "enum": sorted(zone_names()),
        "default": "UTC",
        "description": "IANA zone the cron expression is read in.",
    }
    schema["oneOf"] = [
        {"required": ["cron"], "not": {"required": ["interval_seconds"]}},
        {"required": ["interval_seconds"], "not": {"required": ["cron"]}},
    ]


class MonitorSpec(BaseModel):
    """A monitor's declared schedule and limits (PUT /monitors/{slug}, POST /monitors/batch
    items carry ``slug`` too)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_exact_schema)

    cron: Annotated[str, StringConstraints(max_length=256, pattern=NO_NUL)] | None = Field(
        default=None,
        description="5-field cron expression (or @hourly, @daily, ...), in ``timezone``.",
    )
    interval_seconds: (
        Annotated[int, Field(le=366 * 86400), BeforeValidator(json_integer)] | None
    ) = Field(default=None, description="Instead of cron: every N seconds (at least 60).")
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        default="UTC", description="IANA zone the cron expression is read in."
    )
    grace_seconds: Annotated[int, Field(ge=0, le=WEEK_SECONDS), BeforeValidator(json_integer)] = (
        Field(default=60, description="How late a run may start before it counts as missed.")
    )
    max_runtime_seconds: (
        Annotated[int, Field(ge=1, le=WEEK_SECONDS), BeforeValidator(json_integer)] | None
    ) = Field(default=None, description="A run still in progress after this is timed_out.")
    failure_tolerance: Annotated[int, Field(ge=1, le=100), BeforeValidator(json_integer)] = Field(
        default=1, description="Failed or timed-out runs in a row before the monitor is failing."
    )
    owner_service: Name | None = None
    job_type: Name = Field(
        default="cron_monitor", description="job_type of the history rows this monitor writes."
    )

    @field_validator("cron", "interval_seconds", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null: omit it, or give the other schedule field")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CronExpression.parse(value)
            except ScheduleError as exc:
                raise ValueError(f"invalid cron expression: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zone(value)
        except ScheduleError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("interval_seconds")
    @classmethod
    def _interval(cls, value: int | None) -> int | None:
        if value is not None and value < 60:
            raise ValueError(
                f"{value} seconds would fire more than once a minute; the minimum is 60"
            )
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> MonitorSpec:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of cron and interval_seconds")
        try:
            self.schedule()
        except ScheduleError as exc:
            raise ValueError(str(exc)) from None
        return self

    def schedule(self) -> Schedule:
        return Schedule.build(self.cron, self.interval_seconds, self.timezone)


class MonitorCreate(MonitorSpec):
    slug: Slug


class MonitorBatch(BaseModel):
    """Monitors to upsert in one request (the job tracker registers all its jobs at once)."""

    model_config = ConfigDict(extra="ignore")
    monitors: Annotated[list[MonitorCreate], Field(max_length=1000)]


class MonitorBatchResult(BaseModel):
    created: int
    updated: int
    unchanged: int


class RunSummary(BaseModel):
    run_id: str
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    correlation_id: str | None
    error: str | None


class MonitorPublic(BaseModel):
    slug: str
    job_type: str
    cron: str | None
    interval_seconds: int | None
    timezone: str
    schedule_words: str
    grace_seconds: int
    max_runtime_seconds: int | None
    failure_tolerance: int
    owner_service: str | None
    enabled: bool
    state: MonitorState
    next_expected_at: datetime | None
    last_checkin: RunSummary | None
    created_at: datetime
    updated_at: datetime


class CheckinIn(BaseModel):
    """One check-in: JSON or form-encoded (``curl -d status=ok``)."""

    model_config = ConfigDict(extra="forbid")

    status: CheckinStatus
    check_in_id: Id | None = Field(
        default=None,
        description="Pairs in_progress with its ok/error; a re-sent check-in with the same "
        "id and status changes nothing (idempotent).",
    )
    duration: Annotated[float, Field(ge=0, le=WEEK_SECONDS * 52)] | None = Field(
        default=None, description="Seconds the run took (ok/error)."
    )
    exit_code: Annotated[int, Field(ge=-255, le=255)] | None = Field(
        default=None, description="The command's exit status (the shell wrapper sends it)."
    )
    # The ingest rule (rest_service.schemas.CorrelationId): the library's charset, 422 else.
    correlation_id: CorrelationId | None = None
    message: Annotated[str, StringConstraints(max_length=1024, pattern=NO_NUL)] | None = Field(
        default=None, description="Short text: stored as the run's result or error."
    )


class CheckinResult(BaseModel):
    slug: str
    run_id: str
    status: str = Field(description="The run's job status after this check-in.")
    duplicate: bool = Field(description="True when this exact check-in was already stored.")
