"""Fast JSON bodies for the hot ingest endpoints.

FastAPI parses a body with the stdlib ``json.loads`` and then validates Python objects;
pydantic-core's ``model_validate_json`` does both in one pass, roughly 2.5x faster for a
1,000-event batch (see bench/ingest_throughput.py). These endpoints therefore take the raw
request and validate here, and ``document()`` puts the same request-body schema into
OpenAPI so clients and schemathesis see no difference. Errors keep FastAPI's 422 shape,
with ``loc`` starting at ``body``.

The queue batch endpoint reads a body without NUL with a cheaper validator first
(``validate_nul_free``, ``schemas.QueueEventFields``), and only what that one refuses with
its full model; both give the same values, and the 422 is always the full model's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError

from otel_assist.history import wire
from rest_service.schemas import ValidationErrorBody

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F")
_UNREADABLE = object()

_DOCUMENTED: dict[str, type[BaseModel]] = {}


#: A JSON text holds a NUL character only as a raw 0x00 byte (invalid JSON) or as the
#: escape ``\u0000``, which needs a backslash: two ``memchr`` scans (microseconds for a
#: 500 kB body) clear the common body, a substring search (~0.25 ms) one with escapes.
_NUL = b"\x00"
_BACKSLASH = b"\\"
_NUL_ESCAPE = b"\\u0000"


def nul_free(raw: bytes) -> bool:
    """Whether no string in the JSON text ``raw`` can contain NUL."""
    return _NUL not in raw and (_BACKSLASH not in raw or _NUL_ESCAPE not in raw)


def validate_nul_free(raw: bytes, adapter: TypeAdapter[F]) -> F | None:
    """``adapter``'s reading of the JSON body ``raw`` if no string in it can hold NUL and
    ``adapter`` accepts it; else None, and the route's full model decides. ``adapter`` must
    accept a subset of what that model accepts, with the same values, given no NUL
    (``schemas.QUEUE_EVENT_BATCH_NUL_FREE``)."""
    if not nul_free(raw):
        return None
    try:
        return adapter.validate_json(raw)
    except ValidationError:
        return None  # the full model words the 422 (or accepts what only it accepts)


async def read_json_body(request: Request) -> bytes:
    """The raw body; a 422 unless it is declared JSON (or not declared)."""
    content_type = request.headers.get("content-type", "application/json").lower()
    if "json" not in content_type:
        raise RequestValidationError(
            [{"type": "content_type", "loc": ("body",), "msg": "expected application/json"}]
        )
    return await request.body()


async def parse_json_body(request: Request, model: type[M]) -> M:
    """The body as ``model``, or a 422 in FastAPI's shape."""
    return validate_json_body(await read_json_body(request), model)


def validate_json_body(raw: bytes, model: type[M]) -> M:
    """``raw`` as ``model``, or a 422 in FastAPI's shape (``loc`` starting at ``body``)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        # pydantic-core's parser refuses a lone surrogate escape ("\udcff") for the whole
        # document; the stdlib parser reads it, so validation can name the field at fault
        # (the same 422 the routes that FastAPI parses give).
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            data = _UNREADABLE
        if data is not _UNREADABLE:
            try:
                return model.model_validate(data)
            except ValidationError as exc:
                errors = exc.errors(include_url=False)
    raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors])


def check_not_future(
    times: Iterable[tuple[tuple[str | int, ...], datetime | None]], max_skew_s: float
) -> None:
    """422 naming every timestamp later than now + ``max_skew_s`` (MAX_CLOCK_SKEW_SECONDS).

    The models already refused times before 2000 and ones that overflow; this bound
    needs the settings, so the ingest routes apply it after parsing. An event dated in the
    future would count in "last hour" forever and never be purged by retention."""
    limit = datetime.now(UTC) + timedelta(seconds=max_skew_s)
    errors = [
        {"type": "value_error", "loc": loc, "msg": wire.time_bounds_message(max_skew_s)}
        for loc, value in times
        if value is not None and value > limit
    ]
    if errors:
        raise RequestValidationError(errors)


def body_spec(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route whose body is ``model`` but parsed by hand."""
    _DOCUMENTED[model.__name__] = model
    _DOCUMENTED["ValidationErrorBody"] = ValidationErrorBody
    return {
        "responses": {
            "422": {
                "description": "Validation error: the fields at fault",
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/ValidationErrorBody"}
                    }
                },
            }
        },
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        },
    }


def document(app: FastAPI) -> None:
    """Add the hand-parsed body models (and their nested models) to the OpenAPI schemas."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, model in _DOCUMENTED.items():
            js = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for def_name, definition in js.pop("$defs", {}).items():
                components.setdefault(def_name, definition)
            components[name] = js
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
