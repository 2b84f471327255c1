"""The hello-world FastAPI app of ``http_overhead`` in its three variants.

``BENCH_VARIANT`` picks one: ``plain`` (no telemetry), ``ours`` (otel_assist.configure()
and instrument_app, logs exported over OTLP to a local sink) or ``stock``
(opentelemetry-instrumentation-fastapi with an SDK MeterProvider and no TracerProvider,
i.e. tracing off as otel-assist runs it).
"""

from __future__ import annotations

import os

from fastapi import FastAPI

VARIANT = os.environ.get("BENCH_VARIANT", "plain")


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


if VARIANT == "ours":
    import otel_assist
    from otel_assist.web.asgi import instrument_app

    otel_assist.configure("bench_http")
    app = instrument_app(_app())
elif VARIANT == "stock":
    from opentelemetry import metrics
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider

    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    app = _app()
    FastAPIInstrumentor.instrument_app(app)
else:
    app = _app()
