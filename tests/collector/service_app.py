"""An instrumented service for the Collector tests: FastAPI + otel_assist over real HTTP.

Run as its own process (``python -m tests.collector.service_app --service NAME --port N``),
one process per worker, exactly as a service would run: ``otel_assist.configure()`` reads
the standard OTEL_* variables the test sets (OTLP endpoint = the Collector under test).

``POST /work/{seq}`` does a little CPU work and the things every assistant service does per
message: one structlog event (``event_type=message_processed``, ``user_id``, ``seq``; the
correlation_id comes from the request's X-Correlation-ID), a processed-message count, a
queue push, a queue-length gauge and an LLM call record. The test counts log records by
``seq``, so every emitted record can be checked for at the Loki stand-in.
"""

from __future__ import annotations

import argparse
import hashlib

import uvicorn
from fastapi import FastAPI

import otel_assist
from otel_assist.metrics.instruments import catalog, count_message_processed, record_llm_call
from otel_assist.web.asgi import instrument_app


def build_app() -> FastAPI:
    app = FastAPI()
    log = otel_assist.get_logger("service_app")
    pushed = 0

    @app.post("/work/{seq}")
    async def work(seq: int, user_id: int = 0) -> dict[str, object]:
        nonlocal pushed
        digest = hashlib.sha256(str(seq).encode()).digest()
        for _ in range(300):  # a little real CPU work per message
            digest = hashlib.sha256(digest).digest()
        log.info(
            "message processed",
            event_type="message_processed",
            user_id=user_id,
            seq=seq,
            digest=digest.hex()[:16],
        )
        count_message_processed("http", "success")
        cat = catalog()
        cat["queue_messages"].add(1, queue_name="to_secretary", direction="push")
        pushed += 1
        cat["queue_length"].set(pushed % 7, queue_name="to_secretary")
        record_llm_call("test-model", 0.05, input_tokens=12, output_tokens=30)
        return {"seq": seq, "correlation_id": otel_assist.get_correlation_id()}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return instrument_app(app)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    otel_assist.configure(service_name=args.service)
    uvicorn.run(build_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
