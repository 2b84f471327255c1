"""correlation_id as baggage: inbound precedence, validation, outbound httpx."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from otel_assist import correlation
from otel_assist.testing import Capture


def test_baggage_header_wins_over_fallbacks() -> None:
    _, cid = correlation.extract_from_headers(
        {"baggage": "correlation_id=from-baggage,tenant=a", "x-correlation-id": "from-header"}
    )
    assert cid == "from-baggage"


@pytest.mark.parametrize("header", ["x-correlation-id", "x-request-id"])
def test_fallback_headers(header: str) -> None:
    _, cid = correlation.extract_from_headers({header: "req-1"})
    assert cid == "req-1"


def test_new_id_when_absent() -> None:
    _, cid = correlation.extract_from_headers({})
    assert len(cid) == 32 and correlation.is_valid(cid)


@pytest.mark.parametrize(
    "forged",
    ["abc\ninjected=1", "x" * 5000, 'a"b', "with space", "", "ünïcode", "a\r\nSet-Cookie: x"],
)
def test_invalid_inbound_values_are_replaced(forged: str) -> None:
    _, cid = correlation.extract_from_headers({"x-correlation-id": forged})
    assert cid != forged and correlation.is_valid(cid)
    _, cid = correlation.extract_from_headers({"baggage": f"correlation_id={forged}"})
    assert cid != forged and correlation.is_valid(cid)


def test_other_baggage_entries_are_kept() -> None:
    ctx, _ = correlation.extract_from_headers({"baggage": "tenant=acme"})
    header = correlation.baggage_header(ctx)
    assert header is not None and "tenant=acme" in header and "correlation_id=" in header


def test_scope_nests_and_restores() -> None:
    assert correlation.get_correlation_id() is None
    with correlation.correlation_scope("outer") as outer:
        with correlation.correlation_scope() as inner:
            assert correlation.get_correlation_id() == inner != outer
        assert correlation.get_correlation_id() == "outer"
    assert correlation.get_correlation_id() is None


def test_envelope_roundtrip_through_header_value() -> None:
    with correlation.correlation_scope("queue-cid"):
        value = correlation.baggage_header()
    ctx = correlation.context_from_baggage_header(value)
    assert correlation.get_correlation_id(ctx) == "queue-cid"


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        _Recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def header_server() -> Any:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_outgoing_httpx_carries_baggage(otel_capture: Capture, header_server: str) -> None:
    with correlation.correlation_scope("out-1"):
        httpx.get(header_server)
        async with httpx.AsyncClient() as client:
            await client.get(header_server)
    httpx.get(header_server)  # outside any scope: nothing to carry
    assert [h.get("baggage") for h in _Recorder.seen] == [
        "correlation_id=out-1",
        "correlation_id=out-1",
        None,
    ]
    assert all("traceparent" not in h for h in _Recorder.seen)


def test_httpx_imported_after_configure_is_patched(header_server: str) -> None:
    """configure() no longer imports httpx (bench/rss.py): a service that imports it
    later still gets baggage on its calls, through the import hook."""
    import os
    import subprocess
    import sys

    code = (
        "import sys, otel_assist\n"
        "otel_assist.configure('late_httpx', metrics_exporters=())\n"
        "assert 'httpx' not in sys.modules, 'configure() imported httpx'\n"
        "import httpx\n"
        "with otel_assist.correlation_scope('late-import-id'):\n"
        f"    print(httpx.get({header_server!r}).status_code)\n"
    )
    env = {**os.environ, "OTEL_LOGS_EXPORTER": "none"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "204"
    assert [h.get("baggage") for h in _Recorder.seen] == ["correlation_id=late-import-id"]
