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

import ipaddress
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


class ProxyTrust:
    """Which peers may tell us the client's address (``TRUSTED_PROXIES``; default none).

    Behind a trusted proxy the client is the rightmost X-Forwarded-For hop that is not
    itself a trusted proxy: every proxy appends the address it saw, so entries to the left
    of the last untrusted hop were written by the client and are ignored. Any other peer's
    X-Forwarded-For is ignored entirely. uvicorn would otherwise trust it from loopback by
    default, which let one client rotate the header to escape the failed-auth limit
    (issue 10 §6); ``rest-service serve`` hands uvicorn the same list.
    """

    def __init__(self, entries: list[str]) -> None:
        self.networks = [ipaddress.ip_network(e, strict=False) for e in entries]

    def trusts(self, host: str) -> bool:
        if not self.networks:
            return False
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(addr.version == n.version and addr in n for n in self.networks)

    def client(self, peer: str, forwarded_for: list[str]) -> str:
        if not self.trusts(peer):
            return peer
        hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return _normalise(hop)
        return _normalise(hops[0]) if hops else peer


def _normalise(hop: str) -> str:
    """One spelling per address (``::FFFF:1.2.3.4`` and friends), bounded in length."""
    try:
        addr = ipaddress.ip_address(hop)
    except ValueError:
        return hop[:64]
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped or addr)


def proxy_trust(request: Request) -> ProxyTrust:
    trust: ProxyTrust | None = getattr(request.app.state, "proxy_trust", None)
    if trust is None:
        settings = getattr(request.app.state, "settings", None)
        trust = ProxyTrust(list(getattr(settings, "trusted_proxies", None) or []))
        request.app.state.proxy_trust = trust
    return trust


def client_address(request: Request) -> str:
    """The address the failed-auth limit counts: the peer, or behind a trusted proxy the
    client it forwarded for (see ``ProxyTrust``)."""
    peer = request.client.host if request.client else "unknown"
    return proxy_trust(request).client(peer, request.headers.getlist("x-forwarded-for"))


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
