"""Admin login sessions and CSRF protection.

Logging in with an API token gives a signed, expiring session cookie (itsdangerous). The
cookie holds the scopes the token granted, a per-session CSRF secret and the issue time;
never the token itself. The signing key is ``REST_SERVICE_ADMIN_SESSION_SECRET`` when set,
else derived from the configured API tokens, so every worker process accepts the same
cookies and rotating the tokens also ends every admin session. With authentication
disabled (dev mode) a random per-process key is used.

CSRF: every state-changing form carries the session's CSRF secret (synchronizer token);
the login form, which has no session yet, uses a double-submit nonce cookie. A POST whose
``Origin`` header names another host is refused as well. Cookies are HttpOnly and
SameSite=Lax (Strict for the login nonce), and Secure when the request came over HTTPS.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, Response, status
from itsdangerous import BadSignature, URLSafeTimedSerializer

from rest_service.admin.settings import AdminSettings
from rest_service.core.auth import Scope, scopes_for
from rest_service.core.config import Settings

SESSION_COOKIE = "otel_assist_admin"
LOGIN_NONCE_COOKIE = "otel_assist_admin_login"
COOKIE_PATH = "/admin"
LOGIN_NONCE_SECONDS = 3600


@dataclass(frozen=True)
class AdminSession:
    """A logged-in operator: what the token allowed, and the CSRF secret for forms."""

    scopes: frozenset[str]
    csrf: str
    issued_at: float

    @property
    def can_write(self) -> bool:
        return Scope.INGEST.value in self.scopes


def _signing_key(settings: Settings, admin: AdminSettings) -> bytes:
    if admin.session_secret:
        return admin.session_secret.encode()
    tokens = [
        t.get_secret_value()
        for t in (
            settings.rest_service_token,
            settings.rest_service_read_token,
            settings.rest_service_ingest_token,
        )
        if t is not None and t.get_secret_value()
    ]
    if not tokens:
        return secrets.token_bytes(32)
    material = "\0".join(tokens).encode()
    return hashlib.sha256(b"otel-assist admin session v1\0" + material).digest()


class SessionManager:
    """Issues and verifies session cookies for one app."""

    def __init__(self, settings: Settings, admin: AdminSettings) -> None:
        self.settings = settings
        self.admin = admin
        self.max_age = admin.session_seconds
        self._serializer = URLSafeTimedSerializer(
            _signing_key(settings, admin), salt="otel-assist-admin-session"
        )

    # ------------------------------------------------------------------ login

    def scopes_for_token(self, presented: str) -> frozenset[str]:
        """Scopes an entered token grants; in dev mode (no tokens) every scope."""
        if not self.settings.auth_enabled:
            return frozenset({Scope.READ.value, Scope.INGEST.value})
        if not presented:
            return frozenset()
        return frozenset(s.value for s in scopes_for(self.settings, presented))

    def issue(self, response: Response, request: Request, scopes: frozenset[str]) -> None:
        payload = {"s": sorted(scopes), "c": secrets.token_urlsafe(24), "t": time.time()}
        response.set_cookie(
            SESSION_COOKIE,
            self._serializer.dumps(payload),
            max_age=self.max_age,
            path=COOKIE_PATH,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)

    def load(self, request: Request) -> AdminSession | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self._serializer.loads(raw, max_age=self.max_age)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict):
            return None
        scopes = data.get("s")
        csrf = data.get("c")
        issued = data.get("t")
        if not isinstance(scopes, list) or not isinstance(csrf, str):
            return None
        if not isinstance(issued, int | float):
            return None
        granted = frozenset(str(s) for s in scopes)
        if Scope.READ.value not in granted:
            return None
        return AdminSession(granted, csrf, float(issued))

    # ------------------------------------------------------------------ login CSRF

    @staticmethod
    def login_nonce(request: Request) -> str:
        """The double-submit nonce for the login form (reused while its cookie lives)."""
        current = request.cookies.get(LOGIN_NONCE_COOKIE, "")
        if 16 <= len(current) <= 64 and current.replace("-", "").replace("_", "").isalnum():
            return current
        return secrets.token_urlsafe(24)

    @staticmethod
    def set_login_nonce(request: Request, response: Response, nonce: str) -> None:
        response.set_cookie(
            LOGIN_NONCE_COOKIE,
            nonce,
            max_age=LOGIN_NONCE_SECONDS,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    @staticmethod
    def login_nonce_ok(request: Request, submitted: str) -> bool:
        cookie = request.cookies.get(LOGIN_NONCE_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), submitted.encode())


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site (Origin header)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        # Old browsers omit Origin; the CSRF token still protects the request. A literal
        # "null" origin (sandboxed frame, file://) is never legitimate here.
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def check_csrf(request: Request, session: AdminSession, submitted: str) -> None:
    """Raise 403 unless the form's token matches the session and the origin is ours."""
    if not same_origin(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-origin form submission refused")
    if not submitted or not hmac.compare_digest(session.csrf.encode(), submitted.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or invalid CSRF token")


def safe_next(target: str | None) -> str:
    """Only admin-relative paths: ``next=//evil.example`` must not become an open redirect."""
    if (
        target
        and target.startswith("/admin")
        and not target.startswith("//")
        and "\\" not in target
        and "\r" not in target
        and "\n" not in target
    ):
        return target
    return "/admin/jobs"
