"""Bearer-token auth with two scopes: ``read`` (GET endpoints) and ``ingest`` (writes).

REST_SERVICE_TOKEN grants both; REST_SERVICE_READ_TOKEN and REST_SERVICE_INGEST_TOKEN one
each. Comparison is constant-time (``hmac.compare_digest`` over every configured token, so
timing does not reveal which one nearly matched). Tokens are never logged or echoed.
"""

from __future__ import annotations

import hmac
from enum import StrEnum

from fastapi import HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rest_service.core.auth_limit import record_failure, refuse_if_blocked
from rest_service.core.config import Settings

WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="rest_service"'}

bearer = HTTPBearer(auto_error=False, description="REST_SERVICE_* token as a Bearer token.")


class Scope(StrEnum):
    READ = "read"
    INGEST = "ingest"


def scopes_for(settings: Settings, presented: str) -> set[Scope]:
    """The scopes a presented token grants (empty when it matches none)."""
    given = presented.encode()
    granted: set[Scope] = set()
    candidates = (
        (settings.rest_service_token, {Scope.READ, Scope.INGEST}),
        (settings.rest_service_read_token, {Scope.READ}),
        (settings.rest_service_ingest_token, {Scope.INGEST}),
    )
    for secret, scopes in candidates:
        if secret is None or not secret.get_secret_value():
            continue
        if hmac.compare_digest(secret.get_secret_value().encode(), given):
            granted |= scopes
    return granted


def check(request: Request, creds: HTTPAuthorizationCredentials | None, scope: Scope) -> None:
    settings: Settings = request.app.state.settings
    if not settings.auth_enabled:
        return  # dev mode without tokens: refused at startup otherwise
    refuse_if_blocked(request)
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers=WWW_AUTHENTICATE
        )
    granted = scopes_for(settings, creds.credentials)
    if not granted:
        record_failure(request)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid bearer token",
            headers={"WWW-Authenticate": 'Bearer realm="rest_service", error="invalid_token"'},
        )
    if scope not in granted:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this token lacks the {scope} scope")
