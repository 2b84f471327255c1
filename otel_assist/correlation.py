"""Where correlation_id comes from: a W3C Baggage entry in the OpenTelemetry context.

Tracing is off, so correlation_id is what ties one request's log lines, queue messages and
history rows together. Keeping it in baggage (not a private contextvar) means the standard
propagator carries it over HTTP, and the queue envelope carries it over Redis.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import Token
from types import MappingProxyType

from opentelemetry import baggage, context
from opentelemetry.baggage.propagation import W3CBaggagePropagator

from otel_assist._otel_compat import runtime_context_var

BAGGAGE_KEY = "correlation_id"
HEADER = "x-correlation-id"
FALLBACK_HEADERS = ("x-correlation-id", "x-request-id")
MAX_LENGTH = 128
# Letters, digits and a few separators: enough for UUIDs, ULIDs and most request-id
# formats, and nothing that can break a log line or a header (no spaces, quotes, CR/LF).
_VALID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

_propagator = W3CBaggagePropagator()
_EMPTY = context.Context()

# The API's get_current/attach/detach, as the runtime ContextVar's own (C) methods when the
# compat probe confirms the API keeps the context there: per-message paths read or swap the
# context several times, and each public call is two Python frames. Same semantics, except
# that ``detach`` raises on a token from another context instead of logging it: callers
# detach in the frame that attached.
_VAR = runtime_context_var()
current_context: Callable[[], context.Context] = (
    _VAR.get if _VAR is not None else context.get_current
)
attach: Callable[[context.Context], Token[context.Context]] = (
    _VAR.set if _VAR is not None else context.attach
)
detach: Callable[[Token[context.Context]], None] = (
    _VAR.reset if _VAR is not None else context.detach
)


def _find_baggage_key() -> str | None:
    """The context key the API keeps baggage under, learnt through the public API.

    A context holding only a correlation_id is made for every queue message consumed and
    every request that arrives without one; through ``baggage.set_baggage`` that is five
    calls and two dict copies, built directly it is one ``Context``. The key and the
    representation (a plain dict of entries) are checked here, once, by round-tripping
    through the public functions; if a future API version stores baggage differently the
    check fails and every caller takes the public path. Nothing private is imported.
    """
    try:
        probe = baggage.set_baggage(BAGGAGE_KEY, "probe", _EMPTY)
        if len(probe) != 1:
            return None
        key = next(iter(probe))
        if type(key) is not str or probe[key] != {BAGGAGE_KEY: "probe"}:
            return None
        built = context.Context({key: {BAGGAGE_KEY: "probe"}})
        if dict(baggage.get_all(built)) != {BAGGAGE_KEY: "probe"}:
            return None
        return key
    except Exception:
        return None


_BAGGAGE_CONTEXT_KEY = _find_baggage_key()


def context_for_id(cid: str) -> context.Context:
    """A context whose baggage is exactly ``{correlation_id: cid}`` (``cid`` must already be
    valid): what ``baggage.set_baggage(BAGGAGE_KEY, cid, Context())`` returns, built in one
    step when the representation check above passed."""
    if _BAGGAGE_CONTEXT_KEY is None:
        return baggage.set_baggage(BAGGAGE_KEY, cid, _EMPTY)
    return context.Context({_BAGGAGE_CONTEXT_KEY: {BAGGAGE_KEY: cid}})


def baggage_entries(ctx: context.Context) -> Mapping[str, object]:
    """``baggage.get_all(ctx)`` for a given context, read in one step when the
    representation check above passed (do not modify the result)."""
    if _BAGGAGE_CONTEXT_KEY is None:
        return baggage.get_all(ctx)
    entries = ctx.get(_BAGGAGE_CONTEXT_KEY)
    return entries if type(entries) is dict else _NO_ENTRIES


_NO_ENTRIES: Mapping[str, object] = MappingProxyType({})


def new_correlation_id() -> str:
    """A fresh random id: 32 hex characters, like a UUID4 without the version bits (and
    without uuid's int round trip: this runs for every request that arrives without one)."""
    return os.urandom(16).hex()


def is_valid(value: str | None) -> bool:
    """True when ``value`` is safe to put in logs, headers and URL paths as it is.

    Ids made only of dots are refused too: as a path segment ``..`` (or its encoded form,
    which browsers resolve the same way) would climb out of the link it is put in.
    """
    if value is None:
        return False
    # Fast path for the ids this package makes (hex) and most others: ASCII letters and
    # digits only are a subset of _VALID, and cannot be all dots. Runs per queue message.
    if len(value) <= MAX_LENGTH and value.isascii() and value.isalnum():
        return True
    return _VALID.fullmatch(value) is not None and value.strip(".") != ""


def get_correlation_id(ctx: context.Context | None = None) -> str | None:
    """The correlation_id of the current (or given) context, if any."""
    value = baggage.get_baggage(BAGGAGE_KEY, ctx)
    return value if isinstance(value, str) else None


class CurrentCorrelationId:
    """``get_correlation_id()`` for the log hot path.

    OpenTelemetry contexts are immutable, so the answer for a context object never
    changes: remembering the last context seen turns the baggage lookup (five calls deep)
    into an identity check for every log line of the same request or message.
    """

    def __init__(self) -> None:
        self._ctx: object = None
        self._cid: str | None = None

    def __call__(self) -> str | None:
        ctx = current_context()
        if ctx is not self._ctx:
            self._cid = get_correlation_id(ctx)
            self._ctx = ctx
        return self._cid


def context_with_correlation_id(value: str, ctx: context.Context | None = None) -> context.Context:
    """Return a context with ``value`` as correlation_id (invalid values are replaced),
    attaching nothing: for callers that attach it themselves or hand it on."""
    if not is_valid(value):
        value = new_correlation_id()
    return baggage.set_baggage(BAGGAGE_KEY, value, ctx)


def set_correlation_id(value: str) -> Token[context.Context]:
    """Make ``value`` the correlation_id of the current context (the seed plan's call).

    Returns the token for :func:`reset_correlation_id` (or ``opentelemetry.context.detach``)
    to restore what was there before. An invalid ``value`` is replaced by a new id.
    """
    return context.attach(context_with_correlation_id(value))


def reset_correlation_id(token: Token[context.Context]) -> None:
    """Undo one :func:`set_correlation_id`."""
    context.detach(token)


@contextmanager
def correlation_scope(value: str | None = None) -> Iterator[str]:
    """Run a block with a correlation_id attached (a new one when ``value`` is None).

    Yields the id actually in effect, which differs from ``value`` only when ``value`` was
    not a valid id.
    """
    ctx = context_with_correlation_id(value or new_correlation_id())
    token = context.attach(ctx)
    try:
        yield get_correlation_id(ctx) or ""
    finally:
        context.detach(token)


def extract_from_headers(headers: Mapping[str, str]) -> tuple[context.Context, str]:
    """Build the context for an inbound request from its (lower-cased) headers.

    Order: ``baggage`` header, else ``X-Correlation-ID`` / ``X-Request-ID``, else a new id.
    Any other baggage entries the caller sent are kept, so they propagate onwards.
    """
    ctx = context.Context()
    raw_baggage = headers.get("baggage")
    if raw_baggage:
        ctx = _propagator.extract({"baggage": raw_baggage}, ctx)
    candidate = get_correlation_id(ctx)
    if candidate is None:
        for name in FALLBACK_HEADERS:
            if name in headers:
                candidate = headers[name]
                break
    if not is_valid(candidate):
        candidate = new_correlation_id()
    assert candidate is not None
    return baggage.set_baggage(BAGGAGE_KEY, candidate, ctx), candidate


def fresh_context() -> tuple[context.Context, str]:
    """A context holding only a new correlation_id, and that id: what
    :func:`extract_from_headers` returns for a request that sent none, without its lookups
    (the common case on every request of an edge service)."""
    cid = new_correlation_id()
    return context_for_id(cid), cid


def inject_into_headers(headers: dict[str, str], ctx: context.Context | None = None) -> None:
    """Write the ``baggage`` header (and nothing else: no trace headers) into ``headers``."""
    _propagator.inject(headers, ctx)


def baggage_header(ctx: context.Context | None = None) -> str | None:
    """The current baggage as one W3C header value, for carriers such as queue envelopes."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, ctx)
    return carrier.get("baggage")


def context_from_baggage_header(value: str | None) -> context.Context:
    """The inverse of baggage_header(): a context holding the baggage in ``value``."""
    ctx = context.Context()
    if value:
        ctx = _propagator.extract({"baggage": value}, ctx)
    cid = get_correlation_id(ctx)
    if cid is not None and not is_valid(cid):
        ctx = baggage.set_baggage(BAGGAGE_KEY, new_correlation_id(), ctx)
    return ctx
