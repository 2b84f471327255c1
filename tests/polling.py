"""The one way tests wait for something: poll a check until it holds or a deadline passes.

No fixed sleeps: a test waits exactly as long as the thing takes, up to ``timeout``, and a
timeout names what it waited for. ``poll`` blocks (threads, subprocesses, servers);
``poll_async`` yields to the event loop between checks, for tests whose producers and
consumers run on that loop. An exception in the check propagates at once (it is a bug in
the check or the code, not "not yet").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class PollTimeout(AssertionError):
    """The check did not hold before the deadline (an AssertionError: a failed test)."""


def poll(
    check: Callable[[], T], timeout: float = 10.0, what: str = "", interval: float = 0.05
) -> T:
    """Call ``check`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise PollTimeout(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)


async def poll_async(
    check: Callable[[], T], timeout: float = 10.0, what: str = "", interval: float = 0.02
) -> T:
    """:func:`poll` for a test on an event loop: sleeps with ``asyncio.sleep``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise PollTimeout(f"timed out after {timeout}s waiting for {what or check}")
        await asyncio.sleep(interval)
