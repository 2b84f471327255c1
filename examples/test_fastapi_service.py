"""A test of examples/fastapi_service.py with the ``otel_capture`` fixture.

Run it with ``pytest examples/test_fastapi_service.py`` (the fixture comes with
otel-assist; ``TestClient`` needs no asyncio plugin).
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from fastapi_service import app  # examples/ is on sys.path when pytest runs this file


def test_greeting_is_logged_and_counted(otel_capture) -> None:
    client = TestClient(app)
    reply = client.get("/hello/ada", headers={"X-Correlation-ID": "c-1"})
    assert reply.status_code == 200
    assert reply.headers["X-Correlation-ID"] == "c-1"
    (record,) = otel_capture.log_records(event="greeting")
    assert record["correlation_id"] == "c-1"
    assert otel_capture.metric_value("messages_processed", source="http") == 1
