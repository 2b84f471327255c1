"""Cron monitors: declare schedules, check in from anything that can make an HTTP request.

    curl -fsS -X POST -H "Authorization: Bearer $TOKEN" \\
        "$REST/api/v1/monitors/nightly-backup/checkins" -d status=ok

See docs/monitors.md for the one-liners and the wrapper script.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from rest_service.api.body import body_spec
from rest_service.api.deps import DbDep, IngestAuth, ReadAuth, SettingsDep
from rest_service.api.errors import ERROR_RESPONSES
from rest_service.crud import monitors as crud
from rest_service.monitor_schemas import (
    SLUG_PATTERN,
    CheckinIn,
    CheckinResult,
    MonitorBatch,
    MonitorBatchResult,
    MonitorCreate,
    MonitorPublic,
    MonitorSpec,
)

router = APIRouter(prefix="/monitors", tags=["monitors"], responses=ERROR_RESPONSES)

SlugPath = Annotated[str, Path(min_length=1, max_length=128, pattern=SLUG_PATTERN)]

#: The hand-parsed body in OpenAPI. Only JSON is described: the form encoding carries the
#: same fields as strings (an absent field is omitted, not "null"), see docs/monitors.md.
CHECKIN_BODY: dict[str, Any] = body_spec(CheckinIn)


@router.get("", response_model=list[MonitorPublic], dependencies=[ReadAuth])
async def list_monitors(db: DbDep) -> list[MonitorPublic]:
    """Every monitor with its state, ordered by slug."""
    now = await crud.db_now(db)
    return [await crud.public(db, row, now) for row in await crud.list_rows(db)]


@router.post(
    "",
    response_model=MonitorPublic,
    status_code=status.HTTP_201_CREATED,
    dependencies=[IngestAuth],
)
async def create_monitor(db: DbDep, body: MonitorCreate) -> MonitorPublic:
    """Create a monitor (409 if the slug exists; PUT /monitors/{slug} upserts)."""
    return await crud.public(db, await crud.create(db, body))


@router.post("/batch", response_model=MonitorBatchResult, dependencies=[IngestAuth])
async def upsert_monitors(db: DbDep, body: MonitorBatch) -> MonitorBatchResult:
    """Create or update many monitors by slug (the job tracker's start-up registration).
    Idempotent: re-sending the same specs changes nothing."""
    return await crud.upsert_many(db, body.monitors)


@router.put(
    "/{slug}",
    response_model=MonitorPublic,
    dependencies=[IngestAuth],
    responses={201: {"model": MonitorPublic, "description": "Created"}},
)
async def upsert_monitor(
    db: DbDep, slug: SlugPath, body: MonitorSpec, response: Response
) -> MonitorPublic:
    """Create (201) or update (200) the monitor ``slug``. A changed schedule expects the
    next run from now; a paused monitor stays paused."""
    row, created = await crud.upsert(db, slug, body)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return await crud.public(db, row)


@router.get("/{slug}", response_model=MonitorPublic, dependencies=[ReadAuth])
async def get_monitor(db: DbDep, slug: SlugPath) -> MonitorPublic:
    return await crud.public(db, await crud.get_row(db, slug))


@router.post("/{slug}/pause", response_model=MonitorPublic, dependencies=[IngestAuth])
async def pause_monitor(db: DbDep, slug: SlugPath) -> MonitorPublic:
    """Stop expecting runs (no misses are recorded while paused)."""
    return await crud.public(db, await crud.set_enabled(db, slug, False))


@router.post("/{slug}/resume", response_model=MonitorPublic, dependencies=[IngestAuth])
async def resume_monitor(db: DbDep, slug: SlugPath) -> MonitorPublic:
    """Expect runs again, from the next fire time after now."""
    return await crud.public(db, await crud.set_enabled(db, slug, True))


async def parse_checkin(request: Request) -> CheckinIn:
    """JSON, or form fields (``curl -d status=ok -d duration=3.2``). A field given twice
    in a form is a 422 naming it, as for query parameters."""
    content_type = request.headers.get("content-type", "").lower()
    try:
        if "json" in content_type:
            return CheckinIn.model_validate_json(await request.body())
        if "x-www-form-urlencoded" in content_type or "multipart/form-data" in content_type:
            form = await request.form(max_files=0, max_fields=16)
            counts = Counter(key for key, _ in form.multi_items())
            repeated = sorted(key for key, n in counts.items() if n > 1)
            if repeated:
                raise RequestValidationError(
                    [
                        {"type": "repeated", "loc": ("body", k), "msg": "given more than once"}
                        for k in repeated
                    ]
                )
            fields = {key: value for key, value in form.items() if isinstance(value, str)}
            return CheckinIn.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {**e, "loc": ("body", *e["loc"])}
                for e in exc.errors(include_url=False, include_context=False)
            ]
        ) from None
    raise RequestValidationError(
        [
            {
                "type": "content_type",
                "loc": ("body",),
                "msg": "expected application/json or application/x-www-form-urlencoded",
            }
        ]
    )


@router.post(
    "/{slug}/checkins",
    response_model=CheckinResult,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[IngestAuth],
    openapi_extra=CHECKIN_BODY,
)
async def checkin(
    db: DbDep, settings: SettingsDep, slug: SlugPath, request: Request
) -> CheckinResult:
    """Report a run: ``in_progress`` when it starts, ``ok`` or ``error`` when it ends
    (a finish without a start is fine). The run is a job_executions row like any tracked
    job's. Re-sending a check-in with the same check_in_id and status is a no-op."""
    await crud.get_row(db, slug)  # 404 before the body is judged
    body = await parse_checkin(request)
    return await crud.checkin(db, slug, body, settings.max_payload_bytes)
