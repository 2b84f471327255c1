"""A demo-like service process for the monitoring end-to-end test.

    python -m tests.monitoring.workload <role> <control-dir>

Each role is one "service" (its service.name is the role's service): it calls
``otel_assist.configure()`` and then produces telemetry the way the real service would, through
the otel_assist metric catalog and logger, so the real SDK and exporters carry it. Faults are
switched on and off by files in <control-dir> (``touch <dir>/<fault>``), read every tick:

    rest_service      a Starlette app behind otel_assist's ASGI middleware, served by uvicorn
                      and driven by its own HTTP client (fault ``http_fail``: /api/jobs -> 500)
    assistant_service LLM, tools, memory, RAG, messages, queues, Redis commands
                      (faults ``llm_fail``, ``error_logs``, ``backlog``, ``drop_history``)
    cron_service      job runs, durations, scheduled/stuck/consecutive-failure gauges
                      (faults ``job_fail``, ``job_missed``, ``job_timeout``, ``job_stuck``)
    calendar_service  a quiet service: logs and target_info only (stopped to provoke ServiceDown)

Queue and cron metrics are recorded through the catalog instruments directly (the same
instruments the queue/cron instrumentation uses), because this test is about what Prometheus,
the rules and the dashboards do with them.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from pathlib import Path

import otel_assist
from otel_assist import metrics

TICK = 0.2


class Faults:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def on(self, name: str) -> bool:
        return (self.directory / name).exists()


def run_rest_service(faults: Faults, port: int) -> None:
    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from otel_assist.asgi import TelemetryMiddleware

    log = otel_assist.get_logger("rest_service")

    async def jobs(_request: Request) -> JSONResponse:
        if faults.on("http_fail"):
            log.error("jobs query failed", event_type="response", error="database unavailable")
            return JSONResponse({"detail": "database unavailable"}, status_code=500)
        return JSONResponse({"items": []})

    async def job(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["job_id"]})

    async def memory(request: Request) -> JSONResponse:
        metrics.record_memory_operation("retrieve")
        log.info("memory read", event_type="memory_retrieve", user_id=request.path_params["uid"])
        return JSONResponse({"facts": []})

    app = Starlette(
        routes=[
            Route("/api/jobs", jobs),
            Route("/api/jobs/{job_id}", job),
            Route("/api/users/{uid}/memory", memory),
        ]
    )
    server = uvicorn.Server(
        uvicorn.Config(TelemetryMiddleware(app), host="127.0.0.1", port=port, log_config=None)
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        n = 0
        while True:
            n += 1
            client.get("/api/jobs")
            client.get(f"/api/jobs/{n}")
            client.get(f"/api/users/{100 + n % 3}/memory")
            time.sleep(TICK)


def run_assistant(faults: Faults) -> None:
    log = otel_assist.get_logger("assistant")
    cat = metrics.catalog()
    n = 0
    while True:
        n += 1
        user = 100 + n % 3
        with otel_assist.correlation_scope():
            log.info("message received", event_type="queue_pop", user_id=user)
            cat["queue_messages"].add(1, queue_name="to_secretary", direction="pop")
            cat["queue_messages"].add(1, queue_name="to_telegram", direction="push")
            cat["queue_wait_duration"].record(random.uniform(0.01, 0.5), queue_name="to_secretary")
            cat["queue_processing_duration"].record(
                random.uniform(0.1, 2), queue_name="to_secretary", status="success"
            )
            cat["db.client.operation.duration"].record(
                0.001, **{"db.system.name": "redis", "db.operation.name": "BRPOP"}
            )
            try:
                with metrics.llm_call("gpt-4o-mini") as call:
                    call.tokens(input_tokens=800 + n % 50, output_tokens=120)
                    if faults.on("llm_fail"):
                        raise TimeoutError("LLM API timed out")
            except TimeoutError:
                log.error("llm call failed", event_type="llm_call", user_id=user)
            with metrics.tool_call("create_reminder"):
                pass
            with metrics.rag_search():
                pass
            metrics.record_memory_operation("save")
            metrics.record_memory_operation("search")
            metrics.count_message_processed("telegram")
            if n % 10 == 0:
                cat["queue_invalid_messages"].add(1, queue_name="to_secretary", reason="legacy")
                metrics.count_message_processed("cron", status="error")
            if faults.on("error_logs"):
                for _ in range(3):
                    log.error("tool crashed", event_type="error", user_id=user)
        backlog = faults.on("backlog")
        for queue in ("to_secretary", "to_telegram"):
            cat["queue_length"].set(
                150 if backlog and queue == "to_secretary" else n % 4, queue_name=queue
            )
            cat["queue_oldest_message_age"].set(
                400.0 if backlog and queue == "to_secretary" else 0.5, queue_name=queue
            )
        history_outcome = "dropped" if faults.on("drop_history") else "sent"
        cat["history_events"].add(1, kind="queue", outcome=history_outcome)
        cat["history_buffered_events"].set(n % 5, kind="queue")
        time.sleep(TICK)


def run_cron(faults: Faults) -> None:
    log = otel_assist.get_logger("cron")
    cat = metrics.catalog()
    consecutive = 0
    n = 0
    for job_type in ("reminder", "memory_extraction", "update_reminders"):
        cat["cron_scheduled_jobs"].set(3, job_type=job_type)
    while True:
        n += 1
        with otel_assist.correlation_scope():
            log.info("job started", event_type="job_start", job_type="memory_extraction")
            if faults.on("job_fail"):
                consecutive += 1
                status = "failed"
                log.error("job failed", event_type="job_error", job_type="memory_extraction")
            else:
                consecutive = 0
                status = "completed"
                log.info("job finished", event_type="job_end", job_type="memory_extraction")
            cat["cron_jobs"].add(1, job_type="memory_extraction", status=status)
            cat["cron_job_duration"].record(random.uniform(0.2, 3), job_type="memory_extraction")
            cat["cron_job_consecutive_failures"].set(consecutive, job_type="memory_extraction")
            cat["cron_jobs"].add(1, job_type="reminder", status="completed")
            cat["cron_job_duration"].record(0.05, job_type="reminder")
            if faults.on("job_missed"):
                cat["cron_jobs"].add(1, job_type="update_reminders", status="missed")
            if faults.on("job_timeout"):
                cat["cron_jobs"].add(1, job_type="update_reminders", status="timed_out")
            cat["cron_jobs_running_over_max_runtime"].set(
                1 if faults.on("job_stuck") else 0, job_type="update_reminders"
            )
            cat["history_events"].add(1, kind="job", outcome="sent")
            cat["history_buffered_events"].set(0, kind="job")
        time.sleep(TICK)


def run_calendar(_faults: Faults) -> None:
    log = otel_assist.get_logger("calendar")
    while True:
        log.info("calendar synced", event_type="info")
        time.sleep(1)


SERVICES = {
    "rest_service": "rest_service",
    "assistant": "assistant_service",
    "cron": "cron_service",
    "calendar": "calendar_service",
}


def main() -> None:
    role, control = sys.argv[1], Path(sys.argv[2])
    otel_assist.configure(service_name=SERVICES[role])
    faults = Faults(control)
    if role == "rest_service":
        run_rest_service(faults, int(os.environ["WORKLOAD_HTTP_PORT"]))
    elif role == "assistant":
        run_assistant(faults)
    elif role == "cron":
        run_cron(faults)
    else:
        run_calendar(faults)


if __name__ == "__main__":
    main()
