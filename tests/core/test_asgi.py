"""The ASGI middleware in process: correlation header, HTTP metrics, access log."""

from __future__ import annotations

from collections.abc import MutableMapping

import httpx
import pytest
import structlog
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_assist.correlation import get_correlation_id, is_valid
from otel_assist.testing import Capture
from otel_assist.web.asgi import Receive, Scope, Send, TelemetryMiddleware, instrument_app


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


_HEADER_NAMES = st.sampled_from(
    [b"baggage", b"BAGGAGE", b"X-Correlation-ID", b"x-request-id", b"X-REQUEST-ID", b"host", b"a"]
) | st.binary(max_size=40)
_HEADER_VALUES = (
    st.binary(max_size=300)
    | st.sampled_from([b"correlation_id=ok-1", b"correlation_id=..", b"ok-2", b"\xff\x00\r\n"])
    | st.text(alphabet=st.characters(max_codepoint=255), max_size=200).map(
        lambda t: t.encode("latin-1")
    )
)


@settings(max_examples=150, deadline=None)
@given(headers=st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=12))
async def test_any_raw_headers_give_one_valid_correlation_id(
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Whatever raw header bytes a client sends (any case, binary, control characters,
    repeated names, forged ids), the request runs with exactly one valid correlation_id,
    the handler sees the same id as the response header, and a valid id the client sent
    in X-Correlation-ID (with no baggage and no X-Request-ID) is kept."""
    seen: list[str | None] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(get_correlation_id())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = TelemetryMiddleware(inner, excluded_urls=(), access_log=False)
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, object]) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": headers}
    await app(scope, receive, send)
    echoed = [v for k, v in sent[0]["headers"] if k == b"x-correlation-id"]  # type: ignore[attr-defined]
    assert len(echoed) == 1
    cid = echoed[0].decode()
    assert is_valid(cid) and seen == [cid]
    names = [k.lower() for k, _v in headers]
    only_cid_header = names.count(b"x-correlation-id") == 1 and not (
        {b"baggage", b"x-request-id"} & set(names)
    )
    if only_cid_header:
        sent_id = next(v for k, v in headers if k.lower() == b"x-correlation-id")
        if is_valid(sent_id.decode("latin-1")):
            assert cid == sent_id.decode("latin-1")
    assert get_correlation_id() is None  # the request's context was detached
