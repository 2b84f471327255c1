"""correlation_id as baggage: inbound precedence, validation, outbound httpx."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import baggage
from opentelemetry.context import Context

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


@given(
    st.one_of(
        st.text(max_size=200),
        st.text(alphabet="abcdefABCDEF0123456789._:-", min_size=1, max_size=140),
        st.just("." * 3),
    )
)
def test_is_valid_fast_path_agrees_with_the_pattern(value: str) -> None:
    """The ASCII-alphanumeric shortcut in is_valid() never accepts what the pattern (and
    the all-dots rule) refuses, nor refuses what it accepts."""
    by_pattern = correlation._VALID.fullmatch(value) is not None and value.strip(".") != ""
    assert correlation.is_valid(value) == by_pattern


@given(st.text(alphabet="abcdefABCDEF0123456789._:-", min_size=1, max_size=128))
def test_direct_baggage_context_equals_the_public_path(cid: str) -> None:
    """context_for_id() and baggage_entries() (built and read in one step) give what the
    public baggage API gives: same entries, same header, same id for every reader."""
    if not correlation.is_valid(cid):
        return
    fast = correlation.context_for_id(cid)
    public = baggage.set_baggage(correlation.BAGGAGE_KEY, cid, Context())
    assert correlation._BAGGAGE_CONTEXT_KEY is not None  # the check passed on this API
    assert dict(baggage.get_all(fast)) == dict(baggage.get_all(public)) == {"correlation_id": cid}
    assert correlation.baggage_header(fast) == correlation.baggage_header(public)
    assert correlation.get_correlation_id(fast) == cid
    assert dict(correlation.baggage_entries(public)) == {"correlation_id": cid}
    assert dict(correlation.baggage_entries(Context())) == {}
    with_more = baggage.set_baggage("tenant", "acme", fast)
    assert dict(correlation.baggage_entries(with_more)) == {"correlation_id": cid, "tenant": "acme"}
    assert dict(baggage.get_all(fast)) == {"correlation_id": cid}  # fast ctx unchanged
