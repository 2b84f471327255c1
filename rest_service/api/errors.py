"""Error mapping: every failure becomes a JSON ``{"detail": ...}`` with the right status.

Bad input is 4xx (422 names the field), a missing row 404, an illegal transition 409, an
oversized body 413, and an unreachable database or Redis 503 with ``Retry-After``, never a
500. Messages never contain the database URL, a token, or the submitted value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

from rest_service.core.errors import IllegalTransitionError, NotFoundError, UnavailableError
from rest_service.schemas import ErrorBody, friendly_message

log = structlog.get_logger("rest_service.errors")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Body is not decodable (e.g. not UTF-8 JSON)"},
    401: {"model": ErrorBody, "description": "Missing or invalid bearer token"},
    403: {"model": ErrorBody, "description": "Token lacks the scope"},
    404: {"model": ErrorBody, "description": "Not found"},
    409: {"model": ErrorBody, "description": "Illegal lifecycle transition or duplicate"},
    413: {"model": ErrorBody, "description": "Body or batch too large"},
    429: {
        "model": ErrorBody,
        "description": "Too many failed authentications from this address; see Retry-After",
    },
    503: {"model": ErrorBody, "description": "Database or Redis unreachable; retry"},
}

RETRY_AFTER = {"Retry-After": "5"}


def _json(status_code: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


async def _not_found(_r: Request, exc: Exception) -> JSONResponse:
    return _json(404, str(exc))


async def _conflict(_r: Request, exc: Exception) -> JSONResponse:
    return _json(409, str(exc))


async def _unavailable(_r: Request, exc: Exception) -> JSONResponse:
    log.warning("backend unavailable", event_type="error", error=str(exc))
    return _json(503, str(exc), RETRY_AFTER)


def _is_data_error(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None) or exc
    if isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError):
        return True
    return isinstance(orig, asyncpg.DataError | asyncpg.IntegrityConstraintViolationError) or (
        type(orig).__name__ in {"DataError", "IntegrityError"}
    )


async def _database(_r: Request, exc: Exception) -> JSONResponse:
    if _is_data_error(exc):
        return _json(422, "a value was rejected by the database (out of range or malformed)")
    log.warning("database unavailable", event_type="error", error_type=type(exc).__name__)
    return _json(503, f"database unavailable ({type(exc).__name__}); retry later", RETRY_AFTER)


async def _validation(_r: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # loc/msg/type only: echoing the submitted value back (a 1 MB payload) helps nobody.
    errors = [
        {
            "loc": list(e.get("loc", ())),
            "msg": friendly_message(e) or e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in exc.errors()
    ]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _unicode(_r: Request, exc: Exception) -> JSONResponse:
    return _json(422, "text must be valid UTF-8 without lone surrogates")


def install(app: FastAPI) -> None:
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(IllegalTransitionError, _conflict)
    app.add_exception_handler(UnavailableError, _unavailable)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(UnicodeError, _unicode)
    for exc_type in (
        sa_exc.DBAPIError,
        sa_exc.TimeoutError,
        sa_exc.InterfaceError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        ConnectionError,
        OSError,
        TimeoutError,
    ):
        app.add_exception_handler(exc_type, _database)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class BodyLimitMiddleware:
    """413 for request bodies above ``max_bytes``, by Content-Length or while streaming.

    The body is buffered up to the limit and replayed, so a chunked upload without a
    Content-Length cannot slip past it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._reject(send, 400, "invalid Content-Length")
                    return
                if declared > self.max_bytes:
                    await self._reject(send, 413, self._message())
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._reject(send, 413, self._message())
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _message(self) -> str:
        return f"request body exceeds MAX_BODY_BYTES ({self.max_bytes} bytes)"

    @staticmethod
    async def _reject(send: Callable[[Message], Awaitable[None]], code: int, detail: str) -> None:
        import orjson

        body = orjson.dumps({"detail": detail})
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
