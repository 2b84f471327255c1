"""Queue history (single and batch ingest, filtered listing), stats and live Redis state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from otel_assist.history import wire
from rest_service.api.body import (
    body_spec,
    parse_json_body,
    read_json_body,
    validate_json_body,
    validate_nul_free,
)
from rest_service.api.deps import DbDep, IngestAuth, LiveDep, ReadAuth, SettingsDep
from rest_service.api.errors import ERROR_RESPONSES
from rest_service.api.routes.jobs import check_batch
from rest_service.core.config import Settings
from rest_service.core.db import utcnow
from rest_service.crud import queues as crud
from rest_service.models import QueueDirection, QueueMessageLog
from rest_service.schemas import (
    INT64_MAX,
    INT64_MIN,
    NO_NUL,
    QUEUE_EVENT_BATCH_NUL_FREE,
    QueueCurrent,
    QueueEvent,
    QueueEventBatch,
    QueueEventBatchResult,
    QueueEventFields,
    QueueMessagePublic,
    QueueStats,
    event_fields,
)

router = APIRouter(prefix="/queue-stats", tags=["queues"], responses=ERROR_RESPONSES)

Text128 = Annotated[str | None, Query(min_length=1, max_length=128, pattern=NO_NUL)]


def _rows_or_422(
    events: Sequence[QueueEventFields],
    settings: Settings,
    loc: Callable[[int], tuple[str | int, ...]],
) -> list[tuple[Any, ...]]:
    """The events' rows; a 422 naming every time later than now + MAX_CLOCK_SKEW_SECONDS
    (or beyond what a datetime holds in UTC). Times before 2000 were refused by the model.
    An event dated in the future would count in "last hour" forever and never be purged by
    retention."""
    now = utcnow()
    skew = settings.max_clock_skew_seconds
    rows, late = crud.event_rows(
        events, settings.max_payload_bytes, now, latest=now + timedelta(seconds=skew)
    )
    if late:
        message = wire.time_bounds_message(skew)
        raise RequestValidationError(
            [{"type": "value_error", "loc": (*loc(i), name), "msg": message} for i, name in late]
        )
    return rows


#: Stats are paged by name (keyset: ``after`` = the last name of the previous page), so a
#: deployment with thousands of queue names (one per user, say) costs one page of work
#: per request, never all of them (issue 10 §5).
StatsLimit = Annotated[int, Query(ge=1, le=1000, description="Queues per page, in name order.")]
After = Annotated[
    str,
    Query(
        max_length=128,
        pattern=NO_NUL,
        description="Start after this queue name (the previous page's last one).",
    ),
]
NEXT_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            "Link": {"description": 'rel="next": the next page, when there is one.'},
        }
    }
}


def _next_link(request: Request, response: Response, more: bool, last: str | None) -> None:
    if more and last is not None:
        query = urlencode({**request.query_params, "after": last}, errors="surrogatepass")
        response.headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'


@router.get("", response_model=list[QueueStats], dependencies=[ReadAuth], responses=NEXT_DOC)
async def queue_stats(
    db: DbDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    limit: StatsLimit = 100,
    after: After = "",
) -> list[QueueStats]:
    """Per queue (configured QUEUE_NAMES plus every queue seen in the data), one page in
    name order: messages pushed (all retained time, last hour, last 24 h by type and
    source), pops and in-flight separately. One SQL statement over the hourly rollups for
    the page; a ``Link: <...>; rel="next"`` header points to the next page."""
    stats, more = await crud.queue_stats(db, settings.queue_names, limit=limit, after=after)
    _next_link(request, response, more, stats[-1].queue_name if stats else None)
    return stats


@router.get(
    "/current", response_model=list[QueueCurrent], dependencies=[ReadAuth], responses=NEXT_DOC
)
async def queue_current(
    db: DbDep,
    settings: SettingsDep,
    live: LiveDep,
    request: Request,
    response: Response,
    limit: StatsLimit = 100,
    after: After = "",
) -> list[QueueCurrent]:
    """Live length and oldest-message age from Redis (503 when Redis is unreachable), for
    one page of queue names in name order (``Link`` header: the next page)."""
    async with db.session() as session:
        names, more = await crud.queue_names_page(session, settings.queue_names, limit, after)
    _next_link(request, response, more, names[-1] if names else None)
    return await live.current(names)


@router.get("/messages", response_model=list[QueueMessagePublic], dependencies=[ReadAuth])
async def queue_messages(
    db: DbDep,
    queue_name: Text128 = None,
    user_id: Annotated[int | None, Query(ge=INT64_MIN, le=INT64_MAX)] = None,
    correlation_id: Text128 = None,
    message_id: Text128 = None,
    direction: QueueDirection | None = None,
    hours: Annotated[int, Query(ge=1, le=168)] = 24,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[QueueMessageLog]:
    """Message history, newest first (ties by id: pages are stable)."""
    return await crud.list_messages(
        db,
        since=utcnow() - timedelta(hours=hours),
        queue_name=queue_name,
        user_id=user_id,
        correlation_id=correlation_id,
        message_id=message_id,
        direction=direction.value if direction else None,
        limit=limit,
        offset=offset,
    )


@router.post(
    "/messages",
    response_model=QueueEventBatchResult,
    status_code=status.HTTP_201_CREATED,
    dependencies=[IngestAuth],
    openapi_extra=body_spec(QueueEvent),
)
async def log_queue_message(
    db: DbDep, settings: SettingsDep, request: Request
) -> QueueEventBatchResult:
    """Log one push or pop (idempotent by event_id, like the batch)."""
    event = await parse_json_body(request, QueueEvent)
    rows = _rows_or_422([event_fields(event)], settings, lambda i: ("body",))
    return await crud.store_rows(db, rows, 1)


@router.post(
    "/messages/batch",
    response_model=QueueEventBatchResult,
    dependencies=[IngestAuth],
    openapi_extra=body_spec(QueueEventBatch),
)
async def log_queue_messages_batch(
    db: DbDep, settings: SettingsDep, request: Request
) -> QueueEventBatchResult:
    """Log many pushes/pops. Events already stored (same event_id, or message_id:direction
    when there is no event_id) are skipped, so a re-sent batch adds no rows. Payloads above
    MAX_PAYLOAD_BYTES are stored truncated with a marker and payload_truncated=true."""
    raw = await read_json_body(request)
    fast = validate_nul_free(raw, QUEUE_EVENT_BATCH_NUL_FREE)
    events: Sequence[QueueEventFields] = (
        fast["events"]
        if fast is not None
        else [event_fields(e) for e in validate_json_body(raw, QueueEventBatch).events]
    )
    check_batch(settings, len(events))
    rows = _rows_or_422(events, settings, lambda i: ("body", "events", i))
    return await crud.store_rows(db, rows, len(events))
