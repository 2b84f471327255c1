"""Cron-job executions: batch lifecycle events, strict single-run lifecycle, list, stats."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from rest_service.api.body import check_not_future
from rest_service.api.deps import DbDep, IngestAuth, ReadAuth, SettingsDep
from rest_service.api.errors import ERROR_RESPONSES
from rest_service.core.db import utcnow
from rest_service.crud import jobs as crud
from rest_service.models import JobExecution, JobStatus
from rest_service.schemas import (
    INT64_MAX,
    INT64_MIN,
    NO_NUL,
    JobComplete,
    JobEventBatch,
    JobEventBatchResult,
    JobExecutionCreate,
    JobExecutionPublic,
    JobFail,
    JobStart,
    JobStats,
)

router = APIRouter(prefix="/job-executions", tags=["job-executions"], responses=ERROR_RESPONSES)

Hours = Annotated[int, Query(ge=1, le=168, description="Window: the last N hours (1..168).")]


def check_batch(settings: SettingsDep, count: int) -> None:
    if count > settings.max_batch_events:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"events: {count} events in one batch; the limit is {settings.max_batch_events}",
        )


def _not_future(settings: SettingsDep, body: JobStart | JobComplete | JobFail | None) -> None:
    if body is not None:
        check_not_future([(("body", "at"), body.at)], settings.max_clock_skew_seconds)


@router.get("", response_model=list[JobExecutionPublic], dependencies=[ReadAuth])
async def list_job_executions(
    db: DbDep,
    job_type: Annotated[str | None, Query(min_length=1, max_length=128, pattern=NO_NUL)] = None,
    status: JobStatus | None = None,
    user_id: Annotated[int | None, Query(ge=INT64_MIN, le=INT64_MAX)] = None,
    correlation_id: Annotated[
        str | None, Query(min_length=1, max_length=128, pattern=NO_NUL)
    ] = None,
    hours: Hours = 24,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[JobExecution]:
    """Runs created in the window, newest first (ties by id: pages are stable)."""
    return await crud.list_executions(
        db,
        since=utcnow() - timedelta(hours=hours),
        job_type=job_type,
        status=status.value if status else None,
        user_id=user_id,
        correlation_id=correlation_id,
        limit=limit,
        offset=offset,
    )


@router.get("/stats", response_model=JobStats, dependencies=[ReadAuth])
async def job_execution_stats(
    db: DbDep,
    settings: SettingsDep,
    hours: Hours = 24,
    stuck_after_minutes: Annotated[int | None, Query(ge=1, le=10_080)] = None,
    types_limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobStats:
    """Totals by status, average and p95 duration, and per type (the ``types_limit`` types
    with the most runs; ``other_types`` counts the rest) with failed/missed/stuck."""
    return await crud.job_stats(
        db,
        hours=hours,
        stuck_after_minutes=stuck_after_minutes or settings.stuck_after_minutes,
        exact_percentile_limit=settings.exact_percentile_limit,
        types_limit=types_limit,
    )


@router.post("/events", response_model=JobEventBatchResult, dependencies=[IngestAuth])
async def ingest_job_events(
    db: DbDep, settings: SettingsDep, batch: JobEventBatch
) -> JobEventBatchResult:
    """Apply lifecycle events in bulk. Idempotent and order-independent: events of a run
    may arrive in any order and any number of times and give the same row. A run's status
    only moves up scheduled < missed < skipped < running < completed < cancelled < failed <
    timed_out (docs/job-lifecycle.md).
    """
    check_batch(settings, len(batch.events))
    check_not_future(
        ((("body", "events", i, "at"), ev.at) for i, ev in enumerate(batch.events)),
        settings.max_clock_skew_seconds,
    )
    return await crud.ingest_events(db, batch.events, settings.max_payload_bytes)


@router.post(
    "",
    response_model=JobExecutionPublic,
    status_code=status.HTTP_201_CREATED,
    dependencies=[IngestAuth],
)
async def create_job_execution(
    db: DbDep, settings: SettingsDep, body: JobExecutionCreate
) -> JobExecution:
    """Record a scheduled run (409 if ``run_id`` already exists)."""
    check_not_future(
        [(("body", "scheduled_at"), body.scheduled_at)], settings.max_clock_skew_seconds
    )
    return await crud.create_execution(db, body)


@router.get("/{execution_id}", response_model=JobExecutionPublic, dependencies=[ReadAuth])
async def get_job_execution(db: DbDep, execution_id: uuid.UUID) -> JobExecution:
    return await crud.get_execution(db, execution_id)


@router.post("/{execution_id}/start", response_model=JobExecutionPublic, dependencies=[IngestAuth])
async def start_job_execution(
    db: DbDep, settings: SettingsDep, execution_id: uuid.UUID, body: JobStart | None = None
) -> JobExecution:
    """scheduled|missed -> running; anything else is a 409."""
    _not_future(settings, body)
    return await crud.transition(
        db, execution_id, "start", body or JobStart(), settings.max_payload_bytes
    )


@router.post(
    "/{execution_id}/complete", response_model=JobExecutionPublic, dependencies=[IngestAuth]
)
async def complete_job_execution(
    db: DbDep, settings: SettingsDep, execution_id: uuid.UUID, body: JobComplete | None = None
) -> JobExecution:
    """running|timed_out -> completed; completing a run that never started is a 409."""
    _not_future(settings, body)
    return await crud.transition(
        db, execution_id, "complete", body or JobComplete(), settings.max_payload_bytes
    )


@router.post("/{execution_id}/fail", response_model=JobExecutionPublic, dependencies=[IngestAuth])
async def fail_job_execution(
    db: DbDep, settings: SettingsDep, execution_id: uuid.UUID, body: JobFail
) -> JobExecution:
    """running|timed_out -> failed, with error and traceback; else a 409."""
    _not_future(settings, body)
    return await crud.transition(db, execution_id, "fail", body, settings.max_payload_bytes)
