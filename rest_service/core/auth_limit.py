"""A per-address limit on failed authentications (API bearer tokens and the admin login).

An operator-chosen token can be short enough to guess. After ``AUTH_FAILURE_LIMIT`` failed
attempts from one client address within ``AUTH_FAILURE_WINDOW_SECONDS``, every request
from that address that needs a token is answered 429 with ``Retry-After`` until the window
ends, including one that carries a valid token: otherwise a lucky guess would still be
told it was right. Successful requests never count.

Fixed windows per address, at most ``MAX_ADDRESSES`` of them held (the oldest is forgotten
first), so a flood of spoofed addresses costs bounded memory. The state is per process:
with several uvicorn workers each enforces its own limit.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import HTTPException, Request, status

MAX_ADDRESSES = 10_000


class FailedAuthLimiter:
    """Counts failed authentications per client address in fixed windows."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._max = max_addresses
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again; 0 when it is not blocked."""
        if self.limit <= 0:
            return 0.0
        entry = self._windows.get(address)
        if entry is None:
            return 0.0
        started, failures = entry
        remaining = started + self.window_s - self._clock()
        if remaining <= 0:
            del self._windows[address]
            return 0.0
        return remaining if failures >= self.limit else 0.0

    def failed(self, address: str) -> None:
        if self.limit <= 0:
            return
        now = self._clock()
        started, failures = self._windows.pop(address, (now, 0))
        if now - started >= self.window_s:
            started, failures = now, 0
        self._windows[address] = (started, failures + 1)  # re-inserted: newest last
        while len(self._windows) > self._max:
            self._windows.popitem(last=False)


def client_address(request: Request) -> str:
    """The peer address (uvicorn puts the proxy's X-Forwarded-For here when it is trusted
    with ``--forwarded-allow-ips``)."""
    return request.client.host if request.client else "unknown"


def limiter_for(request: Request) -> FailedAuthLimiter | None:
    return getattr(request.app.state, "auth_limiter", None)


def refuse_if_blocked(request: Request) -> None:
    """429 while this client address is over its failed-authentication limit."""
    limiter = limiter_for(request)
    if limiter is None:
        return
    wait = limiter.retry_after(client_address(request))
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed authentication attempts from this address; retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )


def record_failure(request: Request) -> None:
    limiter = limiter_for(request)
    if limiter is not None:
        limiter.failed(client_address(request))
