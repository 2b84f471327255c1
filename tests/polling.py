"""The one way tests wait for something: poll a check until it holds or a deadline passes.

No fixed sleeps: a test waits exactly as long as the thing takes, up to ``timeout``, and a
timeout names what it waited for, the last value the check returned and, if given, what
``describe()`` says about the state (e.g. the messages a stand-in did receive). ``poll``
blocks (threads, subprocesses, servers); ``poll_async`` yields to the event loop between
checks, for tests whose producers and consumers run on that loop.

An ``OSError`` from the check (connection refused or reset while a server starts, restarts
or is being killed) counts as "not yet" and is retried; the last one is named in the timeout
message. Any other exception propagates at once: it is a bug in the check or the code.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

RETRIED: tuple[type[BaseException], ...] = (OSError,)


class PollTimeout(AssertionError):
    """The check did not hold before the deadline (an AssertionError: a failed test)."""


def _timeout_message(
    timeout: float, what: str, last: object, describe: Callable[[], str] | None
) -> str:
    last_text = repr(last)
    if len(last_text) > 2000:
        last_text = last_text[:2000] + "...(cut)"
    message = f"timed out after {timeout}s waiting for {what} (last: {last_text})"
    if describe is not None:
        message += "\n" + describe()
    return message


def poll(
    check: Callable[[], T],
    timeout: float = 10.0,
    what: str = "",
    interval: float = 0.05,
    *,
    retry_on: tuple[type[BaseException], ...] = RETRIED,
    describe: Callable[[], str] | None = None,
) -> T:
    """Call ``check`` until it returns something truthy, and return that value."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
        except retry_on as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        if time.monotonic() >= deadline:
            raise PollTimeout(_timeout_message(timeout, what or repr(check), last, describe))
        time.sleep(interval)


@overload
async def poll_async(
    check: Callable[[], Awaitable[T]],
    timeout: float = ...,
    what: str = ...,
    interval: float = ...,
    *,
    retry_on: tuple[type[BaseException], ...] = ...,
    describe: Callable[[], str] | None = ...,
) -> T: ...


@overload
async def poll_async(
    check: Callable[[], T],
    timeout: float = ...,
    what: str = ...,
    interval: float = ...,
    *,
    retry_on: tuple[type[BaseException], ...] = ...,
    describe: Callable[[], str] | None = ...,
) -> T: ...


async def poll_async(
    check: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "",
    interval: float = 0.02,
    *,
    retry_on: tuple[type[BaseException], ...] = RETRIED,
    describe: Callable[[], str] | None = None,
) -> Any:
    """:func:`poll` for a test on an event loop: sleeps with ``asyncio.sleep``. ``check``
    may be a coroutine function (e.g. a scrape through an ASGI transport)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            outcome = check()
            result = await outcome if inspect.isawaitable(outcome) else outcome
        except retry_on as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        if time.monotonic() >= deadline:
            raise PollTimeout(_timeout_message(timeout, what or repr(check), last, describe))
        await asyncio.sleep(interval)
