"""Admin session and CSRF rules, checked over plain HTTP against the running demo (and an
in-process app for the configurations the demo does not use)."""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from pydantic import SecretStr

from rest_service.admin.session import SESSION_COOKIE, _signing_key
from rest_service.admin.settings import AdminSettings
from rest_service.core.config import Settings
from tests.browser.conftest import Site


def login(client: httpx.Client, token: str, next_path: str = "/admin/jobs") -> httpx.Response:
    form = client.get("/admin/login")
    nonce = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
    assert nonce, form.text
    return client.post(
        "/admin/login", data={"token": token, "login_csrf": nonce.group(1), "next": next_path}
    )


async def login_nonce(client: httpx.AsyncClient) -> str:
    """The login form's double-submit nonce (its cookie is now in ``client``)."""
    form = await client.get("/admin/login")
    found = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
    assert found, form.text
    return found.group(1)


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_pages_need_a_session_and_send_strict_headers(site: Site) -> None:
    with httpx.Client(base_url=site.url) as client:
        for path in (
            "/admin/jobs",
            "/admin/queues",
            "/admin/memory",
            "/admin/logs",
            "/admin/metrics",
        ):
            resp = client.get(path)
            assert resp.status_code == 303
            assert resp.headers["location"].startswith(f"{site.url}/admin/login?next=")
        assert login(client, site.token).status_code == 303
        page = client.get("/admin/queues")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp  # no script source at all
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"


def test_state_changes_need_the_csrf_token_and_our_origin(site: Site) -> None:
    api = site.demo.api
    fact = api.post("/memories", json={"user_id": 777, "content": "csrf target"}).json()
    path = f"/admin/memory/{fact['id']}/delete"
    with httpx.Client(base_url=site.url) as client:
        login(client, site.token)
        token = csrf_of(client.get(path))
        assert client.post(path, data={}).status_code == 403
        assert client.post(path, data={"csrf_token": "forged"}).status_code == 403
        foreign = client.post(
            path, data={"csrf_token": token}, headers={"Origin": "http://evil.example"}
        )
        assert foreign.status_code == 403
        assert api.get(f"/memories/{fact['id']}").status_code == 200  # nothing was deleted
        done = client.post(path, data={"csrf_token": token}, headers={"Origin": site.url})
        assert done.status_code == 303
        assert api.get(f"/memories/{fact['id']}").status_code == 404
    # Without any session the POST goes to the login page and deletes nothing.
    other = api.post("/memories", json={"user_id": 777, "content": "still here"}).json()
    with httpx.Client(base_url=site.url) as anonymous:
        resp = anonymous.post(f"/admin/memory/{other['id']}/delete", data={"csrf_token": token})
        assert resp.status_code == 303 and "/admin/login" in resp.headers["location"]
    assert api.get(f"/memories/{other['id']}").status_code == 200


def test_login_form_needs_its_nonce_and_never_redirects_off_site(site: Site) -> None:
    with httpx.Client(base_url=site.url) as client:
        # No nonce cookie/field (a cross-site form post): refused.
        resp = client.post("/admin/login", data={"token": site.token, "login_csrf": "x"})
        assert resp.status_code == 403
        assert SESSION_COOKIE not in client.cookies
        resp = login(client, site.token, next_path="//evil.example/admin")
        assert resp.status_code == 303 and resp.headers["location"] == "/admin/jobs"


def test_expired_or_tampered_session_goes_back_to_login(site: Site) -> None:
    settings = Settings(rest_service_token=SecretStr(site.token))
    admin = AdminSettings.from_settings(settings)

    class LongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - admin.session_seconds - 60

    def cookie(signer: type[TimestampSigner]) -> str:
        serializer = URLSafeTimedSerializer(
            _signing_key(settings, admin), salt="otel-assist-admin-session", signer=signer
        )
        return serializer.dumps({"s": ["read", "ingest"], "c": "x" * 32, "t": time.time()})

    with httpx.Client(base_url=site.url) as client:
        client.cookies.set(SESSION_COOKIE, cookie(TimestampSigner), path="/admin")
        assert client.get("/admin/jobs").status_code == 200  # a fresh one is accepted...
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, cookie(LongAgo), path="/admin")
        assert client.get("/admin/jobs").status_code == 303  # ...an expired one is not
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, cookie(TimestampSigner)[:-2] + "xx", path="/admin")
        assert client.get("/admin/jobs").status_code == 303


@pytest.fixture
def split_token_app(monkeypatch: pytest.MonkeyPatch, tmp_path):  # type: ignore[no-untyped-def]
    """rest_service with separate read and ingest tokens and no GRAFANA_URL."""
    from rest_service.app import create_app

    monkeypatch.delenv("GRAFANA_URL", raising=False)
    monkeypatch.delenv("REST_SERVICE_ADMIN_SESSION_SECRET", raising=False)
    settings = Settings(
        rest_service_read_token=SecretStr("reader-token-123"),
        rest_service_ingest_token=SecretStr("ingest-token-456"),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.sqlite3'}",
    )
    return create_app(settings, telemetry=False)


def test_read_only_session_cannot_delete_and_logs_page_explains_grafana(
    split_token_app,  # type: ignore[no-untyped-def]
) -> None:
    async def scenario() -> None:
        transport = httpx.ASGITransport(app=split_token_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as client:
            nonce = await login_nonce(client)
            bad = await client.post(
                "/admin/login", data={"token": "ingest-token-456", "login_csrf": nonce}
            )
            assert bad.status_code == 401  # an ingest-only token cannot read the pages
            ok = await client.post(
                "/admin/login", data={"token": "reader-token-123", "login_csrf": nonce}
            )
            assert ok.status_code == 303
            logs = await client.get("/admin/logs")
            assert "Grafana is not configured." in logs.text
            assert "GRAFANA_URL" in logs.text and "explore?" not in logs.text
            resp = await client.post(
                "/admin/memory/00000000-0000-0000-0000-000000000001/delete",
                data={"csrf_token": csrf_of(logs)},
            )
            assert resp.status_code == 403
            assert "read-only" in resp.text

    # Its own thread and loop: in this session Playwright's sync API holds the main loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result(timeout=60)


def test_admin_login_guessing_is_limited_per_address(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """Two wrong tokens, then even the right one gets 429 until the window ends; a valid
    token that merely lacks the read scope is not counted as a guess."""
    from rest_service.app import create_app

    monkeypatch.delenv("REST_SERVICE_ADMIN_SESSION_SECRET", raising=False)
    settings = Settings(
        rest_service_read_token=SecretStr("reader-token-123"),
        rest_service_ingest_token=SecretStr("ingest-token-456"),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.sqlite3'}",
        auth_failure_limit=2,
        auth_failure_window_seconds=30,
    )
    app = create_app(settings, telemetry=False)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as client:
            nonce = await login_nonce(client)

            async def attempt(token: str) -> httpx.Response:
                return await client.post("/admin/login", data={"token": token, "login_csrf": nonce})

            assert (await attempt("ingest-token-456")).status_code == 401  # not a guess
            assert (await attempt("guess-1")).status_code == 401
            assert (await attempt("guess-2")).status_code == 401
            blocked = await attempt("reader-token-123")
            assert blocked.status_code == 429
            assert "too many failed authentication attempts" in blocked.text
            assert 1 <= int(blocked.headers["retry-after"]) <= 30
            assert "reader-token-123" not in blocked.text

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result(timeout=60)
