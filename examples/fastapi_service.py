"""A FastAPI service instrumented with otel-assist: one route, JSON logs, /metrics.

Needs the ``fastapi`` extra: ``pip install 'otel-assist[fastapi]'``.

Run it with ``uvicorn examples.fastapi_service:app --port 8080`` (from the repository
root) or ``python examples/fastapi_service.py``, then::

    curl -H 'X-Correlation-ID: demo-1' http://127.0.0.1:8080/hello/ada
    curl http://127.0.0.1:8080/metrics

No Collector running? Export is retried in the background and costs nothing; set
``OTEL_LOGS_EXPORTER=none`` to keep the JSON lines on stdout only.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

import otel_assist
from otel_assist import metrics
from otel_assist.web.asgi import instrument_app

# Before anything logs; OTEL_SERVICE_NAME, when set, wins over the name given here.
otel_assist.configure(os.environ.get("OTEL_SERVICE_NAME", "hello_service"))
app = instrument_app(FastAPI())  # correlation_id, HTTP metrics, /metrics
log = otel_assist.get_logger()


@app.get("/hello/{name}")
async def hello(name: str) -> dict[str, str]:
    """Greets; the log line carries the request's correlation_id."""
    log.info("greeting", event_type="response", name_length=len(name))
    metrics.count_message_processed("http")
    return {"greeting": f"hello {name}", "correlation_id": otel_assist.get_correlation_id() or ""}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
