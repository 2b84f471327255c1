"""A demo-like service process for the monitoring end-to-end test.

    python -m tests.monitoring.workload <role> <control-dir>

Each role is one "service" (its service.name is the role's service): it calls
``otel_assist.configure()`` and then produces telemetry the way the real service would, through
the otel_assist metric catalog and logger, so the real SDK and exporters carry it. Faults are
switched on and off by files in <control-dir> (``touch <dir>/<fault>``), read every tick:

    rest_service      a Starlette app behind otel_assist's ASGI middleware, served by uvicorn
                      and driven by its own HTTP client (fault ``http_fail``: /api/jobs -> 500)
    assistant_service LLM, tools, memory, RAG, messages, queues, Redis commands
                      (faults ``llm_fail``, ``error_logs``, ``backlog``)
    cron_service      real APScheduler jobs tracked by ``otel_assist.jobs.track_scheduler``
                      (faults ``job_fail``: a job raises; ``job_stuck``: a job hangs past
                      its max runtime, so it times out; ``job_missed``: a scheduler is
                      paused, so its runs are missed); its history shipper points at a
                      rest_service that is not there, with a 5-event buffer: real drops
    calendar_service  a quiet service: logs and target_info only (stopped to provoke ServiceDown)

Queue metrics are recorded through the catalog instruments directly (the same instruments
otel_assist.queues uses): a backlog whose oldest message is 5 minutes old would otherwise
take 5 minutes of real time.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from pathlib import Path

import otel_assist
from otel_assist.metrics import instruments as metrics

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

    from otel_assist.web.asgi import TelemetryMiddleware

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
        time.sleep(TICK)


def run_cron(faults: Faults) -> None:
    """Real APScheduler jobs tracked by otel_assist.jobs.track_scheduler."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from otel_assist.jobs import track_scheduler

    log = otel_assist.get_logger("cron")

    def memory_extraction() -> None:
        time.sleep(random.uniform(0.05, 0.3))
        if faults.on("job_fail"):
            raise RuntimeError("LLM API unavailable")
        log.info("facts extracted", event_type="job_end")

    def reminder(user_id: int) -> None:
        log.info("reminder sent", event_type="job_end", user_id=user_id)

    def update_reminders() -> None:
        deadline = time.monotonic() + 120
        while faults.on("job_stuck") and time.monotonic() < deadline:
            time.sleep(0.1)  # hangs past its 1s max runtime while the fault is on

    main = BackgroundScheduler(timezone="UTC")
    track_scheduler(main, max_runtime={"update_reminders": 1.0}, grace=0.5, sweep_interval=0.2)
    main.add_job(memory_extraction, "interval", seconds=1, id="memory_extraction_1")
    main.add_job(reminder, "interval", seconds=1, id="reminder_42", kwargs={"user_id": 42})
    main.add_job(update_reminders, "interval", seconds=1, id="update_reminders_1")
    main.start()
    # A second scheduler whose job is missed while it is paused (fault ``job_missed``).
    digest = BackgroundScheduler(timezone="UTC")
    track_scheduler(digest, grace=0.5, sweep_interval=0.2)
    digest.add_job(lambda: None, "interval", seconds=1, id="daily_digest_1")
    digest.start()
    paused = False
    while True:
        want = faults.on("job_missed")
        if want != paused:
            if want:
                digest.pause()
            else:
                digest.resume()
            paused = want
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
