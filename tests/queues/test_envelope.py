"""The envelope format and how garbage is classified."""

from __future__ import annotations

import orjson
import pytest

from otel_assist.queues import envelope as qe


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


# --------------------------------------------------------------------------- properties

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from otel_assist.history import wire  # noqa: E402

NASTY_TEXT = st.one_of(
    st.text(),
    st.sampled_from(["\udcff", "\ud800x", "\x00", "\x1b[31m", "é" * 65, "x" * 129, ""]),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=60, max_size=140),
)
NASTY_INT = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**53, 2**53 - 1, -(2**53), 2**63 - 1, 2**63, -(2**63), -(2**63) - 1,
                     2**64, -(2**64)]),
)  # fmt: skip
JSON_LEAF = st.one_of(
    st.none(), st.booleans(), NASTY_INT, st.floats(allow_nan=False, allow_infinity=False),
    NASTY_TEXT,
)  # fmt: skip
ANY_JSON = st.recursive(
    JSON_LEAF,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(NASTY_TEXT, kids,
                                                                       max_size=4)),
    max_leaves=20,
)  # fmt: skip


def _fields() -> st.SearchStrategy[dict[str, object]]:
    return st.fixed_dictionaries(
        {"v": st.one_of(st.just(1), st.integers(), st.booleans()),
         "id": st.one_of(NASTY_TEXT, NASTY_INT),
         "enqueued_at": st.one_of(st.floats(), NASTY_INT, st.just("yesterday")),
         "payload": ANY_JSON},
        optional={"type": st.one_of(st.none(), NASTY_TEXT), "source": st.one_of(st.none(),
                  NASTY_TEXT), "user_id": st.one_of(st.none(), NASTY_INT, st.booleans()),
                  "baggage": st.one_of(st.none(), NASTY_TEXT)},
    )  # fmt: skip


def _encode(obj: object) -> bytes:
    """JSON the way a foreign producer might write it (stdlib: big ints, lone surrogates
    escaped, NaN); None when even that cannot encode it."""
    import json

    return json.dumps(obj).encode()


@given(raw=st.one_of(st.binary(max_size=300), _fields().map(_encode), ANY_JSON.map(_encode)))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@example(raw=b'{"v":1,"id":"a","enqueued_at":1.0,"user_id":9223372036854775808}')
@example(raw=b'{"v":1,"id":"\\udcff","enqueued_at":1.0}')
@example(raw=b"[" * 5000 + b"]" * 5000)
def test_decoder_never_raises_and_classifies_everything(raw: bytes) -> None:
    decoded = qe.decode(raw)
    assert (decoded.envelope is None) == (decoded.reason is not None)
    if decoded.envelope is not None:
        env = decoded.envelope
        assert 0 < len(env.id) <= wire.ID_MAX
        assert env.user_id is None or wire.INT_ID_MIN <= env.user_id <= wire.INT_ID_MAX
        assert qe.decode(env.encode()).envelope == env


@given(fields=_fields())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@example(fields={"v": 1, "id": "m" * 128, "enqueued_at": 1.7e9, "payload": None,
                 "user_id": 2**53 - 1})  # fmt: skip
@example(fields={"v": 1, "id": "m", "enqueued_at": 1.7e9, "payload": None, "user_id": 2**53})
def test_what_an_envelope_carries_rest_service_stores(fields: dict[str, object]) -> None:
    """The two ends of one range: any envelope the decoder accepts becomes a push event
    that the shipper's wire check passes unchanged in user_id and rest_service's own model
    accepts; a user_id the envelope accepts is never refused."""
    from rest_service.schemas import QueueEvent

    try:
        raw = orjson.dumps(fields)
    except TypeError:
        return  # orjson cannot write it: no producer of ours could send it
    decoded = qe.decode(raw)
    if decoded.envelope is None:
        return
    env = decoded.envelope
    event = {
        "event_id": env.id + ":push", "message_id": env.id, "queue_name": "q",
        "direction": "push", "message_type": env.type, "source": env.source,
        "user_id": env.user_id, "enqueued_at": env.enqueued_at, "payload": env.payload,
    }  # fmt: skip
    cleaned = wire.clean("queue", event, now_ts=1.8e9)
    assert cleaned.event is not None, cleaned.rejected
    assert cleaned.event.get("user_id") == env.user_id
    model = QueueEvent.model_validate_json(orjson.dumps(cleaned.event))
    assert model.user_id == env.user_id
    assert model.message_type == env.type


@given(user_id=NASTY_INT)
@example(user_id=2**53)
@example(user_id=2**63)
@example(user_id=-(2**63) - 1)
def test_user_id_range_is_one_definition(user_id: int) -> None:
    """Envelope decoder, shipper check and rest_service agree on every integer."""
    from pydantic import ValidationError

    from rest_service.schemas import QueueEvent

    env_ok = qe.decode(orjson.dumps({"v": 1, "id": "x", "enqueued_at": 1.7e9,
                                     "user_id": user_id}) if -(2**63) <= user_id < 2**64
                       else b'{"v":1,"id":"x","enqueued_at":1.7e9,"user_id":%d}' % user_id
                       ).envelope is not None  # fmt: skip
    base = {"event_id": "e", "queue_name": "q", "direction": "push", "user_id": user_id}
    wire_ok = wire.clean("queue", base, now_ts=1.8e9).event.get("user_id") == user_id  # type: ignore[union-attr]
    try:
        QueueEvent.model_validate(base)
        rest_ok = True
    except ValidationError:
        rest_ok = False
    assert env_ok == wire_ok == rest_ok == (wire.INT_ID_MIN <= user_id <= wire.INT_ID_MAX)


@pytest.mark.parametrize("user_id", [2**53, -(2**53), 2**63 - 1, True, 1.0])
def test_producer_refuses_a_user_id_history_could_not_store(user_id: object) -> None:
    """Refused at push time, naming the field, instead of an invalid_envelope at the
    consumer (or, before issue 10, an event rest_service refused whole)."""
    env = qe.make({"a": 1}, user_id=user_id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="user_id"):
        env.encode()
    assert qe.make({"a": 1}, user_id=2**53 - 1).encode()


@given(
    payload=ANY_JSON,
    mtype=NASTY_TEXT,
    source=st.one_of(st.none(), NASTY_TEXT),
    user_id=st.one_of(st.none(), NASTY_INT, st.booleans()),
    baggage=st.one_of(st.none(), NASTY_TEXT),
)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@example(payload={"a": "\udcff"}, mtype="t", source=None, user_id=None, baggage=None)
@example(payload=None, mtype="", source="", user_id=2**53, baggage="x" * 9000)
def test_the_per_message_functions_agree_with_the_envelope(
    payload: object, mtype: str, source: str | None, user_id: object, baggage: str | None
) -> None:
    """The producer and consumer use encode_message / decode_fields (no Envelope objects on
    the per-message path): same bytes, same refusals and same classification as
    Envelope.encode / decode, for whatever a caller hands them."""
    env = qe.Envelope("m" * 32, 1.7e9, payload, mtype, source, user_id, baggage)  # type: ignore[arg-type]
    args = ("m" * 32, 1.7e9, payload, mtype, source, user_id, baggage)
    try:
        raw = qe.encode_message(*args)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        with pytest.raises(type(exc)):
            env.encode()
        return
    assert raw == env.encode()
    fields = qe.decode_fields(raw)
    decoded = qe.decode(raw)
    if isinstance(fields, tuple):
        assert decoded.envelope == qe.Envelope(*fields)
        assert fields[0] == "m" * 32 and fields[2] == payload
    else:
        assert decoded == fields and decoded.envelope is None
