"""The hello-world app of ``http_logging``: two application log lines per request.

``BENCH_VARIANT`` picks one:

* ``plain``: what a service without otel-assist writes: structlog with its JSON renderer
  (orjson, bytes logger, cached loggers) to stdout, stdlib ``logging.basicConfig`` text
  lines to stdout, and uvicorn's own access line (uvicorn's default, left on);
* ``ours``: ``otel_assist.configure()`` + ``instrument_app``: the same three lines per
  request as JSON on stdout (uvicorn's access line included, routed through our chain),
  and each also an OpenTelemetry log record exported over OTLP/HTTP.

The handler logs one structlog line and one stdlib line, as service code does.
"""

from __future__ import annotations

import logging
import os
import sys

import orjson
import structlog
from fastapi import FastAPI

VARIANT = os.environ.get("BENCH_VARIANT", "plain")


def _app() -> FastAPI:
    app = FastAPI()
    slog = structlog.get_logger("bench.app")
    stdlog = logging.getLogger("bench.app.stdlib")

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        slog.info("hello requested", event_type="request_in", user_id=42)
        stdlog.info("hello answered for %s", "world")
        return {"hello": "world"}

    return app


if VARIANT == "ours":
    import otel_assist
    from otel_assist.web.asgi import instrument_app

    otel_assist.configure("bench_http_logging")
    app = instrument_app(_app())
else:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        logger_factory=structlog.BytesLoggerFactory(sys.stdout.buffer),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    app = _app()
