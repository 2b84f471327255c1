"""One bad event never costs its batch: the history shipper against a real rest_service
(uvicorn) over Postgres.

An event that cannot be serialised or that rest_service refuses is isolated: repaired
when an optional field is at fault (counted ``sanitized``), else set aside in the
dead-letter file (counted ``dead_letter``, logged with the field's name). Every other event
is stored exactly once, from memory and from the spool alike.
"""

from __future__ import annotations

import collections
import json
import math
import time
import types
import uuid
from pathlib import Path
from typing import Any

import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_assist.history.payload import queue_pop_event, queue_push_event
from otel_assist.history.shipper import HistoryShipper, Spool
from tests.queues.conftest import MetricView, RestService
from tests.queues.test_history import settings_for


def dead_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def job_event(job_id: str, run: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"{run}:started", "run_id": run, "job_id": job_id, "job_name": job_id,
        "job_type": "iso", "kind": "started", "at": time.time(), **extra,
    }  # fmt: skip


def test_one_bad_event_never_costs_its_batch(
    rest_service: RestService, tmp_path: Path, metric_view: MetricView
) -> None:
    """The issue's case: 60 good job events, bad ones, 59 good. Before: flush() said True
    and 0 of 120 were stored (the whole batch died on a TypeError)."""
    dead = tmp_path / "dead.jsonl"
    shipper = HistoryShipper(settings_for(rest_service, dead_letter_file=str(dead)))
    job_id = "iso_" + uuid.uuid4().hex[:8]
    good = [job_event(job_id, f"{job_id}-{i}") for i in range(119)]
    repaired = [
        job_event(job_id, f"{job_id}-surrogate", job_name="bad \udcff name"),
        job_event(job_id, f"{job_id}-huge", user_id=2**64),
        job_event(job_id, f"{job_id}-odd", reminder_id=True, correlation_id="c\x00"),
    ]
    undeliverable = [
        job_event(job_id, f"{job_id}-kind", kind="exploded"),
        job_event(job_id, f"{job_id}-nan", at=math.nan),
    ]
    with structlog.testing.capture_logs() as logs:
        for ev in good[:60] + repaired + undeliverable + good[60:]:
            shipper.submit("job", ev)
        assert shipper.flush(20)
        shipper.shutdown()

    q = f"job_id = '{job_id}'"
    assert rest_service.count(f"select count(*) from job_executions where {q}") == 122
    assert rest_service.count(f"select count(distinct run_id) from job_executions where {q}") == 122
    assert (
        rest_service.sql(f"select job_name from job_executions where run_id = '{job_id}-surrogate'")
        == "bad \\udcff name"
    )
    assert (
        rest_service.sql(f"select user_id from job_executions where run_id = '{job_id}-huge'") == ""
    )
    lines = dead_lines(dead)
    assert sorted(line["field"] for line in lines) == ["at", "kind"]
    assert {line["event"]["run_id"] for line in lines} == {f"{job_id}-kind", f"{job_id}-nan"}
    assert shipper.stats[("job", "sent")] == 122
    assert shipper.stats[("job", "dead_letter")] == 2
    assert shipper.stats[("job", "sanitized")] == 3
    assert metric_view.value("history_events", kind="job", outcome="dead_letter") == 2
    assert metric_view.value("history_events", kind="job", outcome="sanitized") == 3
    set_aside = [e for e in logs if e["event"].startswith("history event set aside")]
    assert sorted(e["field"] for e in set_aside) == ["at", "kind"]
    repaired_logs = {e["field"] for e in logs if e["event"].startswith("history event field")}
    assert {"job_name", "user_id", "reminder_id", "correlation_id"} <= repaired_logs


def test_spool_replay_isolates_bad_lines(
    rest_service: RestService, tmp_path: Path, metric_view: MetricView
) -> None:
    """A spool left by a crashed process (or an older version): good lines, two that
    rest_service refuses (422: a bad direction, an int past 64 bits) and a torn last line.
    Every good line is stored once; the rest are in the dead-letter file, counted, never
    silently skipped."""
    spool_dir = tmp_path / "spool"
    queue = "spool-" + uuid.uuid4().hex[:8]
    spool = Spool(str(spool_dir), max_bytes=10**7, segment_bytes=10**7)

    def line(i: int, **extra: Any) -> bytes:
        ev = {"event_id": f"{queue}-{i}", "queue_name": queue, "direction": "push", **extra}
        return json.dumps(ev).encode()

    good = [line(i) for i in range(300)]
    spool.append("queue", [*good[:150], line(900, direction="sideways"), *good[150:]])
    spool.append("queue", [line(901, user_id=2**70)])
    spool.seal()
    with spool.segments()[-1].open("ab") as fh:
        fh.write(b'q {"event_id":"' + queue.encode() + b'-torn","queue')
    dead = tmp_path / "dead.jsonl"
    shipper = HistoryShipper(
        settings_for(rest_service, spool_dir=str(spool_dir), dead_letter_file=str(dead))
    )
    assert shipper.flush(20)
    shipper.shutdown()
    q = f"queue_name = '{queue}'"
    assert rest_service.count(f"select count(*) from queue_message_logs where {q}") == 300
    assert rest_service.count(
        f"select count(distinct event_id) from queue_message_logs where {q}"
    ) == 300  # fmt: skip
    lines = dead_lines(dead)
    assert len(lines) == 3
    refused = [x for x in lines if x["field"] == "direction"]
    assert len(refused) == 1 and "422" in refused[0]["reason"]
    assert refused[0]["event"]["event_id"] == f"{queue}-900"
    assert sorted(x["field"] for x in lines) == ["direction", "line", "user_id"]
    assert shipper.stats[("queue", "sent")] == 300
    assert shipper.stats[("queue", "dead_letter")] == 3
    assert not spool.segments()


# --------------------------------------------------------------------------- generated

NASTY = st.one_of(
    st.sampled_from([
        "\udcff", "a\ud800b", "\x00", "x" * 300, "", 2**64, -(2**63) - 1, 2**200, math.nan,
        math.inf, -1, True, 1e300, "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00",
        "sideways", b"\xff\xfe", 253402300799.0, {"nested": {"deeper": ["\udcff"]}},
    ]),
    st.text(max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
)  # fmt: skip
FIELDS = ["message_id", "queue_name", "direction", "message_type", "source", "user_id",
          "correlation_id", "payload", "enqueued_at", "dequeued_at", "at", "extra_key"]  # fmt: skip


def deep(n: int) -> Any:
    value: Any = "bottom"
    for _ in range(n):
        value = [value]
    return value


class OddMapping(collections.abc.Mapping[str, Any]):
    """A Mapping that is not a dict (what a service might hand over)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Any:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[bool, Any]]:
    """(is_good, event) pairs; the bad ones have one to three nasty fields, a deep or
    huge payload, a nasty event_id suffix, or are odd Mappings."""
    n = draw(st.integers(min_value=1, max_value=80))
    out: list[tuple[bool, Any]] = []
    for i in range(n):
        ev: dict[str, Any] = {"event_id": f"@{i}", "queue_name": "@q", "direction": "push"}
        if draw(st.integers(min_value=0, max_value=4)) != 0:
            out.append((True, ev))
            continue
        for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3)):
            ev[name] = draw(NASTY)
        shape = draw(st.sampled_from(["plain", "deep", "huge", "id", "proxy", "ordered"]))
        if shape == "deep":
            ev["payload"] = deep(draw(st.integers(min_value=50, max_value=2000)))
        elif shape == "huge":
            ev["payload"] = {"blob": "y" * draw(st.integers(min_value=10**5, max_value=10**6))}
        elif shape == "id":
            ev["event_id"] = f"@{i}" + draw(st.sampled_from(["\udcff", "\x00", "z" * 300]))
        out.append((False, ev))
        if shape == "proxy":
            out[-1] = (False, types.MappingProxyType(ev))
        elif shape == "ordered":
            out[-1] = (False, OddMapping(collections.OrderedDict(ev)))
    return out


@given(batch=batches())
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
def test_every_good_event_is_stored_exactly_once(
    rest_service: RestService, tmp_path: Path, batch: list[tuple[bool, Any]]
) -> None:
    prefix = uuid.uuid4().hex[:12]
    dead = tmp_path / f"dead-{prefix}.jsonl"
    shipper = HistoryShipper(settings_for(rest_service, dead_letter_file=str(dead), batch_size=25))

    def fill(value: Any) -> Any:
        return value.replace("@", prefix) if isinstance(value, str) else value

    events = []
    for good, ev in batch:
        data = {k: (fill(v) if k in ("event_id", "queue_name") else v) for k, v in ev.items()}
        events.append((good, data if isinstance(ev, dict) else type(ev)(data)))  # type: ignore[call-arg]
    for _good, ev in events:
        shipper.submit("queue", ev)
    assert shipper.flush(30)
    shipper.shutdown()

    stored = rest_service.sql(
        f"select event_id from queue_message_logs where event_id like '{prefix}%'"
    ).split("\n")
    stored = [s for s in stored if s]
    assert len(stored) == len(set(stored)), "an event was stored twice"
    good_ids = {ev["event_id"] for good, ev in events if good}
    assert good_ids <= set(stored), "a good event was lost"
    dead_count = len(dead_lines(dead))
    # Every event is accounted for: stored once, or in the dead-letter file.
    assert len(stored) + dead_count == len(events), (len(stored), dead_count, len(events))
    assert shipper.stats.get(("queue", "dead_letter"), 0) == dead_count
    assert shipper.stats.get(("queue", "dropped"), 0) == 0


def _explode(*_args: Any) -> dict[str, Any]:
    raise RuntimeError("a builder that fails")


def test_deferred_events_are_built_on_the_shipper_thread_like_their_dicts(
    rest_service: RestService, tmp_path: Path
) -> None:
    """The queue ends submit ``(builder, *args)`` tuples; the shipper thread builds them.
    Each is stored exactly like the dict its builder returns (payload masked the same way),
    and a tuple that cannot be built costs itself only: set aside as a summary (never its
    raw payload), counted ``dead_letter``."""
    dead = tmp_path / "dead.jsonl"
    shipper = HistoryShipper(settings_for(rest_service, dead_letter_file=str(dead)))
    q = "deferred_" + uuid.uuid4().hex[:8]
    raw = b'{"v": 1, "payload": {"text": "hi", "password": "hunter2-secret"}}'
    as_dicts: list[dict[str, Any]] = []
    as_tuples: list[tuple[Any, ...]] = []
    for i in range(40):
        push = (f"{q}-d{i}", q, "human", "bench", 7, "c" * 32, 1.7e9 + i, raw)
        pop = (f"{q}-d{i}:pop", f"{q}-d{i}", q, "human", "bench", 7, "c" * 32, 1.7e9 + i,
               1.7e9 + i + 0.5, None)  # fmt: skip
        as_dicts += [queue_push_event(*push), queue_pop_event(*pop)]
        as_tuples += [
            (queue_push_event, f"{q}-t{i}", *push[1:]),
            (queue_pop_event, f"{q}-t{i}:pop", f"{q}-t{i}", *pop[2:]),
        ]
    broken: list[Any] = [(_explode, raw), (), (queue_push_event, "too few", raw)]
    for as_dict, as_tuple in zip(as_dicts, as_tuples, strict=True):
        shipper.submit("queue", as_dict)
        shipper.submit("queue", as_tuple)
        if broken:
            shipper.submit("queue", broken.pop())
    assert shipper.flush(20)
    shipper.shutdown()

    def rows(marker: str) -> list[str]:
        return rest_service.sql(
            f"select replace(event_id, '-{marker}', '-'), direction, message_type, source,"
            " user_id, correlation_id, enqueued_at, dequeued_at, payload::text"
            f" from queue_message_logs where event_id like '{q}-{marker}%' order by 1, 2"
        ).splitlines()

    from_dicts, from_tuples = rows("d"), rows("t")
    assert len(from_dicts) == 80
    assert from_tuples == from_dicts
    assert "hunter2-secret" not in "\n".join(from_tuples)
    lines = dead_lines(dead)
    assert len(lines) == 3
    assert shipper.stats[("queue", "dead_letter")] == 3
    assert shipper.stats[("queue", "sent")] == 160
    assert "hunter2" not in dead.read_text()
    assert {line["event"]["deferred"] for line in lines} == {"_explode", "?", "queue_push_event"}
