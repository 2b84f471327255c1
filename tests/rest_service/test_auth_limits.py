"""Auth, limits and hand-written bad input: always a clear 4xx, never a 500."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rest_service.app import create_app
from rest_service.core.auth_limit import FailedAuthLimiter, ProxyTrust
from rest_service.core.config import Settings
from tests.rest_service.conftest import (
    API,
    INGEST_TOKEN,
    READ_TOKEN,
    TOKEN,
    Running,
    auth,
    make_settings,
    start,
)

JOBS = f"{API}/job-executions"
BATCH = f"{API}/queue-stats/messages/batch"


def qev(**extra: Any) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "queue_name": "to_secretary",
        "direction": "push",
        **extra,
    }


async def test_requests_without_valid_token_get_401_with_challenge(svc: Running) -> None:
    c = svc.client
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ):
        r = await c.get(JOBS, headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in r.text
    r = await c.post(BATCH, json={"events": [qev()]}, headers={"Authorization": ""})
    assert r.status_code == 401
    # health, ready and metrics stay open
    for path in ("/health", "/ready", "/metrics"):
        assert (await c.get(path, headers={"Authorization": ""})).status_code == 200, path


async def test_read_and_ingest_scopes(svc: Running) -> None:
    c = svc.client
    r = await c.post(BATCH, json={"events": [qev()]}, headers=auth(READ_TOKEN))
    assert r.status_code == 403 and "ingest" in r.json()["detail"]
    assert (await c.get(JOBS, headers=auth(READ_TOKEN))).status_code == 200
    r = await c.post(BATCH, json={"events": [qev()]}, headers=auth(INGEST_TOKEN))
    assert r.status_code == 200
    assert (await c.get(JOBS, headers=auth(INGEST_TOKEN))).status_code == 403


def test_refuses_to_start_without_token_unless_dev_mode(sqlite_url: str) -> None:
    with pytest.raises(RuntimeError, match="REST_SERVICE_TOKEN"):
        create_app(Settings(database_url=sqlite_url), telemetry=False)
    with pytest.raises(RuntimeError):
        create_app(Settings(database_url=sqlite_url, rest_service_token=""), telemetry=False)
    create_app(Settings(database_url=sqlite_url, rest_service_dev_mode=True), telemetry=False)


def test_settings_never_show_secrets() -> None:
    s = Settings(rest_service_token="super-secret-value-1")
    assert "super-secret-value-1" not in repr(s) and "super-secret-value-1" not in str(s)


async def test_dev_mode_without_token_serves_openly(sqlite_url: str, otel_capture: Any) -> None:
    settings = make_settings(
        sqlite_url,
        rest_service_token=None,
        rest_service_read_token=None,
        rest_service_ingest_token=None,
        rest_service_dev_mode=True,
    )
    async for svc in start(settings):
        assert (await svc.client.get(JOBS, headers={"Authorization": ""})).status_code == 200


async def test_oversized_body_and_batch(sqlite_url: str, otel_capture: Any) -> None:
    settings = make_settings(sqlite_url, max_body_bytes=64 * 1024, max_batch_events=10)
    async for svc in start(settings):
        c = svc.client
        r = await c.post(
            BATCH,
            content=b'{"events": [' + b" " * 70_000 + b"]}",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413 and "MAX_BODY_BYTES" in r.json()["detail"]

        async def chunks():  # no Content-Length: counted while streaming
            for _ in range(20):
                yield b" " * 8192

        r = await c.post(BATCH, content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        r = await c.post(BATCH, json={"events": [qev() for _ in range(11)]})
        assert r.status_code == 413 and "limit is 10" in r.json()["detail"]
        r = await c.post(BATCH, json={"events": [qev() for _ in range(10)]})
        assert r.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        ("get", f"{JOBS}/not-a-uuid", {}, "execution_id"),
        ("post", f"{JOBS}/123/start", {}, "execution_id"),
        ("get", f"{API}/memories/{'9' * 30}", {}, "memory_id"),
        ("get", JOBS, {"params": {"limit": -1}}, "limit"),
        ("get", JOBS, {"params": {"limit": 0}}, "limit"),
        ("get", JOBS, {"params": {"limit": 10**30}}, "limit"),
        ("get", JOBS, {"params": {"offset": -5}}, "offset"),
        ("get", JOBS, {"params": {"hours": 169}}, "hours"),
        ("get", JOBS, {"params": {"hours": "abc"}}, "hours"),
        ("get", JOBS, {"params": {"status": "exploded"}}, "status"),
        ("get", JOBS, {"params": [("status", "failed"), ("status", "completed")]}, "status"),
        ("get", JOBS, {"params": {"user_id": 2**64}}, "user_id"),
        ("get", JOBS, {"params": {"job_type": "a\x00b"}}, "job_type"),
        ("get", f"{API}/queue-stats/messages", {"params": {"direction": "sideways"}}, "direction"),
        ("get", f"{API}/memories/user/{2**70}", {}, "user_id"),
        ("post", BATCH, {"json": {"events": [qev(direction="sideways")]}}, "direction"),
        ("post", BATCH, {"json": {"events": [qev(user_id=2**63)]}}, "user_id"),
        ("post", BATCH, {"json": {"events": [qev(user_id=2**53)]}}, "user_id"),
        ("post", BATCH, {"json": {"events": [qev(queue_name="")]}}, "queue_name"),
        ("post", BATCH, {"json": {"events": [qev(queue_name="q\x00")]}}, "queue_name"),
        ("post", BATCH, {"json": {"events": [qev(enqueued_at="yesterday")]}}, "enqueued_at"),
        ("post", BATCH, {"json": {"events": [{"queue_name": "q", "direction": "push"}]}}, "events"),
        ("post", BATCH, {"json": {"events": "nope"}}, "events"),
        (
            "post",
            f"{JOBS}/events",
            {
                "json": {
                    "events": [
                        {
                            "event_id": "e",
                            "run_id": "r",
                            "job_id": "j",
                            "job_type": "t",
                            "kind": "exploded",
                            "at": "2026-01-01T00:00:00Z",
                        }
                    ]
                }
            },
            "kind",
        ),
        (
            "post",
            f"{JOBS}/events",
            {
                "json": {
                    "events": [
                        {
                            "event_id": "e",
                            "run_id": "r",
                            "job_id": "j",
                            "job_type": "t",
                            "kind": "started",
                            "at": "2026-01-01T00:00:00Z",
                            "duration_ms": -1,
                        }
                    ]
                }
            },
            "duration_ms",
        ),
        ("post", f"{API}/memories", {"json": {"user_id": 1, "content": ""}}, "content"),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    svc: Running, method: str, path: str, kwargs: dict[str, Any], field: str
) -> None:
    r = await getattr(svc.client, method)(path, **kwargs)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(field in [str(p) for p in d["loc"]] for d in detail), detail


async def test_non_utf8_and_malformed_bodies(svc: Running) -> None:
    c = svc.client
    h = {"content-type": "application/json"}
    for body in (
        b'{"events": [{"queue_name": "\xff\xfe", "direction": "push"}]}',
        b"\x80\x81\x82",
        b"{",
        b"",
        b"null",
        b"[]",
    ):
        r = await c.post(BATCH, content=body, headers=h)
        # FastAPI answers undecodable bytes with 400 "error parsing the body"
        assert r.status_code in (400, 422), (body, r.status_code, r.text)
        assert r.json()["detail"]
    r = await c.post(BATCH, content=b"events=1", headers={"content-type": "text/plain"})
    assert r.status_code == 422
    # a lone surrogate escape in JSON never reaches the database as broken text
    r = await c.post(
        BATCH,
        content=b'{"events": [{"event_id": "s1", "queue_name": "q\\ud800", "direction": "push"}]}',
        headers=h,
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "body"
    # undecodable percent-escapes in a query become replacement characters: no match
    r = await c.get(f"{API}/queue-stats/messages?queue_name=%FF%FE")
    assert r.status_code == 200 and r.json() == []


async def test_sql_looking_filters_are_plain_values(svc: Running) -> None:
    c = svc.client
    nasty = ["' OR '1'='1", "x; DROP TABLE job_executions; --", "%", "_", "\\", '" OR 1=1']
    for value in nasty:
        for path, name in (
            (JOBS, "job_type"),
            (JOBS, "correlation_id"),
            (f"{API}/queue-stats/messages", "queue_name"),
        ):
            r = await c.get(path, params={name: value})
            assert r.status_code == 200 and r.json() == [], (path, value)
    r = await c.post(BATCH, json={"events": [qev(queue_name=nasty[1], source="'; --")]})
    assert r.status_code == 200
    got = (await c.get(f"{API}/queue-stats/messages", params={"queue_name": nasty[1]})).json()
    assert len(got) == 1 and got[0]["source"] == "'; --"
    assert (await c.get(JOBS)).status_code == 200  # the table is still there


async def test_out_of_range_times_are_4xx(svc: Running) -> None:
    ev = {
        "event_id": "e",
        "run_id": "r",
        "job_id": "j",
        "job_type": "t",
        "kind": "started",
        "at": "0001-01-01T00:00:00Z",
    }
    r = await svc.client.post(f"{JOBS}/events", json={"events": [ev]})
    # Timestamps are bounded to 2000-01-01 .. now + MAX_CLOCK_SKEW_SECONDS (issue 10).
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "events", 0, "at"]
    r = await svc.client.post(f"{JOBS}/events", json={"events": [{**ev, "at": 1e20}]})
    assert r.status_code == 422


@pytest.mark.parametrize("value", ["soon", "5", "99999999"])
def test_bad_admin_setting_fails_at_start_with_the_variable_named(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    import subprocess
    import sys

    monkeypatch.setenv("REST_SERVICE_ADMIN_SESSION_SECONDS", value)
    with pytest.raises(ValueError, match="REST_SERVICE_ADMIN_SESSION_SECONDS"):
        create_app(Settings(database_url=sqlite_url, rest_service_dev_mode=True), telemetry=False)
    cli = subprocess.run(
        [
            sys.executable,
            "-c",
            "from rest_service.cli import main; raise SystemExit(main(['serve']))",
        ],
        env={
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": sqlite_url,
            "REST_SERVICE_TOKEN": "a-token-for-this-test",
            "REST_SERVICE_ADMIN_SESSION_SECONDS": value,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 2
    assert "REST_SERVICE_ADMIN_SESSION_SECONDS" in cli.stderr
    assert "a-token-for-this-test" not in cli.stderr


async def test_repeated_wrong_tokens_from_one_address_get_429_until_the_window_ends(
    sqlite_url: str,
) -> None:
    settings = make_settings(sqlite_url, auth_failure_limit=3, auth_failure_window_seconds=1.0)
    async for running in start(settings):
        c = running.client
        assert (await c.get(JOBS)).status_code == 200  # successes never count
        for _ in range(3):
            r = await c.get(JOBS, headers=auth("guess"))
            assert r.status_code == 401
        assert (await c.get(JOBS, headers={"Authorization": ""})).status_code == 429
        r = await c.get(JOBS)  # even the right token: a lucky guess must not be confirmed
        assert r.status_code == 429
        assert "too many failed authentication attempts" in r.json()["detail"]
        assert 1 <= int(r.headers["retry-after"]) <= 1
        assert TOKEN not in r.text
        assert (await c.get("/health")).status_code == 200  # open endpoints stay open
        await asyncio.sleep(1.1)
        assert (await c.get(JOBS)).status_code == 200


async def test_failed_auth_limit_zero_turns_it_off(sqlite_url: str) -> None:
    async for running in start(make_settings(sqlite_url, auth_failure_limit=0)):
        for _ in range(30):
            r = await running.client.get(JOBS, headers=auth("guess"))
            assert r.status_code == 401
        assert (await running.client.get(JOBS)).status_code == 200


def test_failed_auth_limiter_holds_a_bounded_number_of_addresses() -> None:
    now = [0.0]
    limiter = FailedAuthLimiter(2, 60.0, clock=lambda: now[0], max_addresses=100)
    for i in range(10_000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._windows) == 100
    limiter.failed("10.9.9.9")
    limiter.failed("10.9.9.9")
    assert limiter.retry_after("10.9.9.9") == 60.0
    assert limiter.retry_after("10.0.0.0") == 0.0  # forgotten first
    now[0] = 60.0
    assert limiter.retry_after("10.9.9.9") == 0.0  # the window is over


async def test_unknown_or_repeated_query_parameters_are_named_in_a_422(svc: Running) -> None:
    c = svc.client
    r = await c.get(JOBS, params={"job_typ": "reminder"})  # a typo must not unfilter the list
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "job_typ"]
    r = await c.get(f"{JOBS}?status=failed&status=completed")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "status"]
    r = await c.get("/api/v1/memories/user/7", params={"q": "tea", "sort": "newest", "x": "1"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "x"]
    # every declared parameter, including those of shared dependencies, is still accepted
    r = await c.get(JOBS, params={"job_type": "reminder", "status": "failed", "hours": 2,
                                  "limit": 5, "user_id": 1})  # fmt: skip
    assert r.status_code == 200, r.text
    history = {"queue_name": "q", "user_id": 1, "hours": 1, "limit": 5, "offset": 5}
    r = await c.get("/api/v1/queue-stats/messages", params=history)
    assert r.status_code == 200, r.text


# ----------------------------------------------------------------- proxies (issue 10 §6)


async def _guesses(c: Any, n: int, xff: Any = None) -> Counter[int]:
    """``n`` wrong tokens; ``xff(i)`` gives the i-th request's X-Forwarded-For."""
    seen: Counter[int] = Counter()
    for i in range(n):
        headers = {"Authorization": "Bearer wrong-guess"}
        if xff is not None:
            headers["X-Forwarded-For"] = xff(i)
        seen[(await c.get(JOBS, headers=headers)).status_code] += 1
    return seen


def _rotating(i: int) -> str:
    return f"203.0.{i // 250}.{i % 250 + 1}"


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    sqlite_url: str,
) -> None:
    """Default (no TRUSTED_PROXIES): a blocked client that rotates X-Forwarded-For is still
    one client, and stays blocked even with the right token."""
    settings = make_settings(sqlite_url, auth_failure_limit=5, auth_failure_window_seconds=60)
    async for running in start(settings):
        seen = await _guesses(running.client, 60, _rotating)
        assert seen == Counter({401: 5, 429: 55})
        r = await running.client.get(JOBS, headers={"X-Forwarded-For": "198.51.100.9"})
        assert r.status_code == 429


async def test_behind_a_configured_proxy_each_forwarded_client_has_its_own_limit(
    sqlite_url: str,
) -> None:
    """TRUSTED_PROXIES names the proxy (the test client's peer is 127.0.0.1): the limit
    counts the client the proxy forwarded for; what a client writes to the left of the
    proxy's own entry does not matter, and a request without the header counts as the
    proxy itself."""
    settings = make_settings(
        sqlite_url,
        auth_failure_limit=3,
        auth_failure_window_seconds=60,
        trusted_proxies=["127.0.0.0/8", "10.0.0.0/8"],
    )
    async for running in start(settings):
        c = running.client
        assert await _guesses(c, 5, lambda i: "203.0.113.7") == Counter({401: 3, 429: 2})
        # the blocked client forging extra hops on the left is still 203.0.113.7
        forged = await _guesses(c, 5, lambda i: f"{_rotating(i)}, 203.0.113.7")
        assert forged == Counter({429: 5})
        # ... also when a second trusted proxy (10.x) sits between
        assert await _guesses(c, 2, lambda i: "1.2.3.4, 203.0.113.7, 10.1.2.3") == Counter({429: 2})
        # other clients behind the same proxy are not affected
        r = await c.get(JOBS, headers={"X-Forwarded-For": "198.51.100.9"})
        assert r.status_code == 200
        assert await _guesses(c, 3, lambda i: "198.51.100.10") == Counter({401: 3})
        # rotating clients each get their own window: 401s, never a shared 429
        assert await _guesses(c, 20, lambda i: f"192.0.2.{i + 1}") == Counter({401: 20})
        # the IPv4-mapped IPv6 spelling is the same client
        r = await c.get(JOBS, headers={"X-Forwarded-For": "::ffff:203.0.113.7"})
        assert r.status_code == 429
        # no header: the proxy's own address is the client
        assert (await c.get(JOBS)).status_code == 200


def test_trusted_proxies_setting_parses_and_refuses_typos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", " 10.0.0.5, 172.18.0.0/16 ,::1")
    assert Settings().trusted_proxies == ["10.0.0.5", "172.18.0.0/16", "::1"]
    monkeypatch.setenv("TRUSTED_PROXIES", "")
    assert Settings().trusted_proxies == []
    monkeypatch.delenv("TRUSTED_PROXIES")
    assert Settings().trusted_proxies == []
    for bad in ("10.0.0.300", "proxy.local", "*", "10.0.0.0/33"):
        monkeypatch.setenv("TRUSTED_PROXIES", bad)
        with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
            Settings()


@given(
    peer=st.one_of(st.ip_addresses().map(str), st.text(max_size=40)),
    hops=st.lists(st.one_of(st.ip_addresses().map(str), st.text(max_size=80)), max_size=6),
    trusted=st.lists(st.ip_addresses().map(str), max_size=3),
)
@settings(max_examples=300, deadline=None)
def test_proxy_trust_never_raises_and_untrusted_peers_are_themselves(
    peer: str, hops: list[str], trusted: list[str]
) -> None:
    trust = ProxyTrust(trusted)
    got = trust.client(peer, [", ".join(hops)] if hops else [])
    assert isinstance(got, str) and len(got) <= max(64, len(peer))
    if not trust.trusts(peer):
        assert got == peer


def test_rest_service_serve_ignores_forwarded_for_from_loopback_by_default(
    tmp_path: Any, postgres: Any
) -> None:
    """The real ``rest-service serve`` (uvicorn): uvicorn itself trusts X-Forwarded-For from
    127.0.0.1 unless told otherwise. 60 wrong tokens with a new X-Forwarded-For each from
    one client: blocked after AUTH_FAILURE_LIMIT. With TRUSTED_PROXIES=127.0.0.1 the same
    traffic is 60 different clients, each under its limit."""
    import os

    import httpx

    from tests import servers

    base = {
        **os.environ,
        "DATABASE_URL": postgres.create_database(f"rs_xff_{uuid.uuid4().hex[:8]}"),
        "REST_SERVICE_TOKEN": TOKEN,
        "MIGRATE_ON_START": "true",
        "RETENTION_ENABLED": "false",
        "OTEL_LOGS_EXPORTER": "none",
        "AUTH_FAILURE_LIMIT": "5",
    }
    base.pop("TRUSTED_PROXIES", None)
    base.pop("FORWARDED_ALLOW_IPS", None)
    for trusted, expected in (
        (None, Counter({401: 5, 429: 55})),
        ("127.0.0.1", Counter({401: 60})),
    ):
        env = dict(base) if trusted is None else {**base, "TRUSTED_PROXIES": trusted}
        with servers.serve_rest_service(env, tmp_path / f"rs-{trusted}.log") as url:
            seen: Counter[int] = Counter()
            with httpx.Client(base_url=url, timeout=10) as client:
                for i in range(60):
                    r = client.get(
                        JOBS,
                        headers={"Authorization": "Bearer nope", "X-Forwarded-For": _rotating(i)},
                    )
                    seen[r.status_code] += 1
            assert seen == expected, (trusted, seen)
