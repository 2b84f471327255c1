"""The envelope format and how garbage is classified."""

from __future__ import annotations

import orjson
import pytest

from otel_assist import queue_envelope as qe


def test_round_trip_keeps_every_field() -> None:
    env = qe.make({"text": "hi"}, type="human", source="telegram", user_id=42, baggage="a=b")
    decoded = qe.decode(env.encode())
    assert decoded.reason is None
    assert decoded.envelope == env
    assert set(orjson.loads(env.encode())) == {
        "v", "id", "enqueued_at", "baggage", "type", "source", "user_id", "payload"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json{", "invalid_json"),
        (b"\xff\xfe\x00", "invalid_json"),
        (b'{"text": "old producer"}', "legacy"),
        (b'"just a string"', "legacy"),
        (b"[1, 2]", "legacy"),
        (b'{"v": 1, "id": 5, "enqueued_at": 1.0}', "invalid_envelope"),
        (b'{"v": 1, "id": "x", "enqueued_at": "yesterday"}', "invalid_envelope"),
        (b'{"v": 1, "id": "x", "enqueued_at": true}', "invalid_envelope"),
        (b'{"v": 2, "id": "x", "enqueued_at": 1.0}', "invalid_envelope"),
        (b'{"v": 1, "id": "x", "enqueued_at": 1.0, "user_id": "42"}', "invalid_envelope"),
        (b'{"v": 1, "id": "x", "enqueued_at": 1.0, "user_id": 99999999999999999999}',
         "invalid_envelope"),
    ],
)  # fmt: skip
def test_garbage_is_classified(raw: bytes, reason: str) -> None:
    decoded = qe.decode(raw)
    assert decoded.envelope is None
    assert decoded.reason == reason


def test_too_large_is_not_parsed() -> None:
    raw = qe.make("x" * 2000).encode()
    assert qe.decode(raw, max_bytes=1000).reason == "too_large"
    assert qe.decode(raw, max_bytes=0).envelope is not None


def test_rest_service_reads_our_enqueued_at() -> None:
    """rest_service's live queue view parses the same field from the same bytes."""
    from rest_service.live_queues import envelope_enqueued_at

    env = qe.make({"a": 1})
    assert envelope_enqueued_at(env.encode()) == env.enqueued_at
    assert qe.enqueued_at_of(env.encode()) == env.enqueued_at
