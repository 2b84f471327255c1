"""tests/polling.py: returns the check's value, retries connection errors, and a timeout
names what was awaited, the last value and the state ``describe`` reports."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.polling import PollTimeout, poll, poll_async


def test_returns_the_first_truthy_value() -> None:
    values: Iterator[object] = iter([0, [], None, "ready", "later"])
    assert poll(lambda: next(values), 5, "a value", 0) == "ready"


def test_connection_errors_are_not_yet_and_named_on_timeout() -> None:
    calls = itertools.count()

    def refused() -> bool:
        if next(calls) < 3:
            raise ConnectionRefusedError("port closed")
        return True

    assert poll(refused, 5, "the port", 0) is True

    def always_refused() -> bool:
        raise ConnectionRefusedError("port closed")

    with pytest.raises(PollTimeout, match=r"waiting for the port \(last: ConnectionRefused"):
        poll(always_refused, 0.05, "the port", 0.01)


def test_other_errors_propagate_at_once() -> None:
    calls = itertools.count()

    def broken() -> bool:
        next(calls)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        poll(broken, 5, "never", 0)
    assert next(calls) == 1


def test_timeout_names_what_last_and_describe() -> None:
    with pytest.raises(PollTimeout) as info:
        poll(lambda: 0, 0.05, "the queue to drain", 0.01, describe=lambda: "queue holds 7")
    message = str(info.value)
    assert "timed out after 0.05s waiting for the queue to drain (last: 0)" in message
    assert message.endswith("queue holds 7")
    assert isinstance(info.value, AssertionError)  # a failed test, not an error


async def test_async_checks_may_be_coroutines() -> None:
    seen: list[int] = []

    async def grows() -> bool:
        seen.append(1)
        return len(seen) >= 3

    assert await poll_async(grows, 5, "three calls", 0) is True
    assert len(seen) == 3
    with pytest.raises(PollTimeout, match="never"):
        await poll_async(lambda: False, 0.05, "never", 0.01)
