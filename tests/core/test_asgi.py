"""The ASGI middleware in process: correlation header, HTTP metrics, access log."""

from __future__ import annotations

import httpx
import pytest
import structlog
from fastapi import FastAPI

from otel_assist.testing import Capture
from otel_assist.web.asgi import instrument_app


def make_app() -> FastAPI:
    app = FastAPI()
    log = structlog.get_logger()

    @app.get("/users/{user_id}/facts")
    async def facts(user_id: int) -> dict[str, int]:
        log.info("facts listed", event_type="memory_retrieve", user_id=user_id)
        return {"user_id": user_id}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("bad")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return instrument_app(app, access_log=True)


@pytest.fixture
def client(otel_capture: Capture) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_correlation_id_from_baggage_reaches_logs_and_response(
    client: httpx.AsyncClient, otel_capture: Capture
) -> None:
    resp = await client.get("/users/9/facts", headers={"baggage": "correlation_id=abc-9"})
    assert resp.status_code == 200
    assert resp.headers["x-correlation-id"] == "abc-9"
    rec = otel_capture.log_records(event="facts listed")[0]
    assert rec["correlation_id"] == "abc-9" and rec["user_id"] == 9
    access = otel_capture.log_records(event="request")[0]
    assert access["http_route"] == "/users/{user_id}/facts" and access["status_code"] == 200
    assert access["correlation_id"] == "abc-9"


async def test_500_still_echoes_header_and_is_measured(
    client: httpx.AsyncClient, otel_capture: Capture
) -> None:
    resp = await client.get("/crash", headers={"x-request-id": "req-500"})
    assert resp.status_code == 500
    assert resp.headers["x-correlation-id"] == "req-500"
    assert (
        otel_capture.metric_value(
            "http.server.request.duration",
            **{"http.route": "/crash", "http.response.status_code": 500},
        )
        == 1
    )


async def test_metrics_use_route_template_not_raw_path(
    client: httpx.AsyncClient, otel_capture: Capture
) -> None:
    for user in range(5):
        await client.get(f"/users/{user}/facts")
    await client.get("/no/such/path")
    points = otel_capture.metric_points("http.server.request.duration")
    routes = {p.attributes.get("http.route") for p in points}
    assert routes == {"/users/{user_id}/facts", None}
    assert all("/users/1/facts" not in str(p.attributes) for p in points)
    assert (
        otel_capture.metric_value(
            "http.server.request.duration",
            **{"http.route": "/users/{user_id}/facts", "http.request.method": "GET"},
        )
        == 5
    )
    assert otel_capture.metric_value("http.server.active_requests") == 0


async def test_excluded_urls_not_measured_but_echo_header(
    client: httpx.AsyncClient, otel_capture: Capture
) -> None:
    resp = await client.get("/health", headers={"x-correlation-id": "hc-1"})
    assert resp.headers["x-correlation-id"] == "hc-1"
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert otel_capture.metric_points("http.server.request.duration") == []


async def test_unknown_method_folded(client: httpx.AsyncClient, otel_capture: Capture) -> None:
    from otel_assist.metrics import instruments as metrics

    metrics.catalog()["http.server.request.duration"].folder.limit = 2
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        await client.request(method, "/users/1/facts")
    methods = {
        p.attributes["http.request.method"]
        for p in otel_capture.metric_points("http.server.request.duration")
    }
    assert methods == {"GET", "PUT", "_other"}


async def test_route_template_keeps_router_prefixes(otel_capture: Capture) -> None:
    from fastapi import APIRouter

    inner = APIRouter(prefix="/jobs")

    @inner.get("/{job_id}")
    async def job(job_id: str) -> dict[str, str]:
        return {"id": job_id}

    outer = APIRouter(prefix="/api/v1")
    outer.include_router(inner)
    app = FastAPI()
    app.include_router(outer)
    instrument_app(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/api/v1/jobs/abc")).status_code == 200
    routes = {
        p.attributes.get("http.route")
        for p in otel_capture.metric_points("http.server.request.duration")
    }
    assert routes == {"/api/v1/jobs/{job_id}"}
