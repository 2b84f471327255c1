"""The Loki stand-in's rules, each tested on its own (tests/loki/standin.py, logql.py).

OTLP requests are built with opentelemetry-proto and posted over real HTTP, as the
Collector's otlp_http exporter posts them.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.loki import logql
from tests.loki.otlp import push, record, request
from tests.loki.standin import (
    LOKI_VERSION,
    MAX_STRUCTURED_METADATA_BYTES,
    LokiStandIn,
    detected_level,
    label_name,
)

ROOT = Path(__file__).resolve().parents[2]


def get(loki: LokiStandIn, path: str, **params: Any) -> tuple[int, Any]:
    url = f"{loki.url}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            raw = resp.read().decode()
            return resp.status, json.loads(raw) if raw.startswith("{") else raw
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def loki() -> Iterator[LokiStandIn]:
    stand_in = LokiStandIn().start()
    yield stand_in
    stand_in.stop()


# --------------------------------------------------------------------------- ingest


def test_otlp_mapping_index_labels_and_structured_metadata(loki: LokiStandIn) -> None:
    attrs: dict[str, str | int] = {
        "event_type": "queue_push",
        "correlation_id": "c-1",
        "user_id": 42,
        "exception.type": "ValueError",
        "code.function.name": "handle",
    }
    status, _ = push(loki, request([record("message queued", attrs=attrs)]), gzipped=True)
    assert status == 200
    [entry] = loki.entries()
    # Only the two configured resource attributes are index labels.
    assert dict(entry.stream) == {"service_name": "checkout", "deployment_environment_name": "test"}
    meta = dict(entry.metadata)
    # Everything else is structured metadata, dots turned into underscores.
    assert meta["service_instance_id"] == "0f3c"
    assert meta["host_name"] == "box-1"
    assert meta["event_type"] == "queue_push"
    assert meta["correlation_id"] == "c-1"
    assert meta["user_id"] == "42"
    assert meta["exception_type"] == "ValueError"
    assert meta["code_function_name"] == "handle"
    assert meta["detected_level"] == "info"
    assert entry.line == "message queued"


def test_labels_api_lists_index_labels_only(loki: LokiStandIn) -> None:
    push(loki, request([record("a", attrs={"user_id": 1})], service="a"))
    push(loki, request([record("b")], service="b", env="prod"))
    assert get(loki, "/loki/api/v1/labels")[1]["data"] == [
        "deployment_environment_name",
        "service_name",
    ]
    assert get(loki, "/loki/api/v1/label/service_name/values")[1]["data"] == ["a", "b"]
    assert get(loki, "/loki/api/v1/label/user_id/values")[1]["data"] == []


@pytest.mark.parametrize(
    ("number", "text", "level"),
    [
        (5, "DEBUG", "debug"),
        (9, "INFO", "info"),
        (13, "WARNING", "warn"),  # Python's WARNING -> Loki's warn
        (17, "ERROR", "error"),
        (21, "CRITICAL", "fatal"),  # Python's CRITICAL is OTLP FATAL -> Loki's fatal
        (0, "warning", "warn"),
        (0, "critical", "fatal"),
        (0, "", "unknown"),
    ],
)
def test_detected_level(number: int, text: str, level: str) -> None:
    assert detected_level(number, text) == level


def test_detected_level_is_queryable_as_loki_names(loki: LokiStandIn) -> None:
    push(loki, request([record("w", severity=13, text="WARNING"), record("c", severity=21)]))
    _, warn = get(
        loki, "/loki/api/v1/query_range", query='{service_name="checkout"} | detected_level="warn"'
    )
    assert [v[1] for s in warn["data"]["result"] for v in s["values"]] == ["w"]
    _, old = get(
        loki,
        "/loki/api/v1/query_range",
        query='{service_name="checkout"} | detected_level="warning"',
    )
    assert old["data"]["result"] == []  # what the old dashboard option matched: nothing
    _, fatal = get(
        loki,
        "/loki/api/v1/query_range",
        query='{service_name="checkout"} | detected_level=~"error|fatal"',
    )
    assert [v[1] for s in fatal["data"]["result"] for v in s["values"]] == ["c"]


def test_structured_metadata_over_64kb_is_refused_with_lokis_text(loki: LokiStandIn) -> None:
    big = "x" * (MAX_STRUCTURED_METADATA_BYTES + 10)
    status, text = push(loki, request([record("ok"), record("huge", attrs={"payload": big})]))
    assert status == 400
    assert "has structured metadata too large: '" in text
    assert f"limit: '{MAX_STRUCTURED_METADATA_BYTES}' bytes" in text
    assert text.startswith(
        'stream \'{deployment_environment_name="test", service_name="checkout"}\''
    )
    # The record that passed validation is kept; the oversized one is not.
    assert [e.line for e in loki.entries()] == ["ok"]
    assert loki.seqs() == [] and len(loki.snapshot()) == 1


def test_old_records_refused_and_long_lines_truncated(loki: LokiStandIn) -> None:
    old = time.time_ns() - 49 * 3600 * 10**9
    status, text = push(loki, request([record("old", ts_ns=old)]))
    assert status == 400 and "has timestamp too old" in text
    status, _ = push(loki, request([record("y" * (300 * 1024))]))
    assert status == 200
    assert len(loki.entries()[0].line) == 256 * 1024


def test_bad_protobuf_is_a_400(loki: LokiStandIn) -> None:
    status, text = push(loki, b"\xff\xff\xff not protobuf")
    assert status == 400 and "failed to parse push request" in text


def test_ready_answers_503_during_startup_but_pushes_are_accepted() -> None:
    loki = LokiStandIn(startup_seconds=30).start()
    try:
        assert get(loki, "/ready")[0] == 503
        assert push(loki, request([record("early")]))[0] == 200
        assert [e.line for e in loki.entries()] == ["early"]
    finally:
        loki.stop()


# --------------------------------------------------------------------------- queries


def test_query_range_streams_newest_first_with_limit(loki: LokiStandIn) -> None:
    now = time.time_ns()
    records = [
        record(f"line {i}", attrs={"correlation_id": f"c{i % 2}"}, ts_ns=now - (10 - i) * 10**9)
        for i in range(10)
    ]
    push(loki, request(records))
    _, body = get(loki, "/loki/api/v1/query_range", query='{service_name=~".+"} |= "line"', limit=3)
    values = sorted(
        (v for s in body["data"]["result"] for v in s["values"]), key=lambda v: -int(v[0])
    )
    assert [v[1] for v in values] == ["line 9", "line 8", "line 7"]
    # Streams carry index labels merged with structured metadata (Loki's default encoding).
    assert all("correlation_id" in s["stream"] for s in body["data"]["result"])
    _, fwd = get(
        loki,
        "/loki/api/v1/query_range",
        query='{service_name="checkout"} | correlation_id="c1" |~ "line [13]"',
        direction="forward",
    )
    assert [v[1] for s in fwd["data"]["result"] for v in s["values"]] == ["line 1", "line 3"]


def test_metric_query_sum_by(loki: LokiStandIn) -> None:
    now = time.time_ns()
    push(loki, request([record("e", severity=17, ts_ns=now - 10**9)] * 3, service="a"))
    push(loki, request([record("f", severity=21, ts_ns=now - 10**9)], service="b"))
    _, body = get(
        loki,
        "/loki/api/v1/query_range",
        query='sum by (service_name) (count_over_time({service_name=~".+"} '
        '| detected_level=~"error|fatal" [1m]))',
        start=str(now - 60 * 10**9),
        end=str(now),
        step="10s",
    )
    assert body["data"]["resultType"] == "matrix"
    last = {s["metric"]["service_name"]: s["values"][-1][1] for s in body["data"]["result"]}
    assert last == {"a": "3", "b": "1"}


@pytest.mark.parametrize(
    "query",
    [
        '{service_name=~".*"}',
        '{service_name=~".*", deployment_environment_name=~".*"}',
        '{service_name=""}',
        '{service_name!~".+"}',
        'sum(count_over_time({service_name=~".*"} [1m]))',
    ],
)
def test_empty_compatible_selectors_are_refused_with_lokis_text(
    loki: LokiStandIn, query: str
) -> None:
    status, text = get(loki, "/loki/api/v1/query_range", query=query)
    assert status == 400
    assert text == logql.EMPTY_COMPATIBLE_ERROR


@pytest.mark.parametrize(
    "query",
    ['{service_name=~".+"}', '{service_name!=""}', '{a=~".*", service_name="x"}'],
)
def test_one_non_empty_compatible_matcher_is_enough(loki: LokiStandIn, query: str) -> None:
    assert get(loki, "/loki/api/v1/query_range", query=query)[0] == 200


@pytest.mark.parametrize(
    "query",
    [
        "{service_name=}",
        '{service_name="a"',
        'service_name="a"',
        '{service_name="a"} | detected_level ~ "x"',
        '{service_name="a"} |',
        'sum({service_name="a"})',
        'count_over_time({service_name="a"})',
        '{service_name="a\\q"}',
        '{service_name=~"(" }',
        "",
    ],
)
def test_unknown_syntax_is_a_400_parse_error(loki: LokiStandIn, query: str) -> None:
    status, text = get(loki, "/loki/api/v1/query_range", query=query)
    assert status == 400
    assert text.startswith("parse error")


def test_valid_logql_outside_the_subset_is_not_passed_off_as_a_loki_error(
    loki: LokiStandIn,
) -> None:
    status, text = get(loki, "/loki/api/v1/query_range", query='{service_name="a"} | json')
    assert status == 501 and "stand-in" in text


def test_limits(loki: LokiStandIn) -> None:
    status, text = get(loki, "/loki/api/v1/query_range", query='{a="b"}', limit=5001)
    assert status == 400 and "max entries limit" in text
    status, text = get(
        loki, "/loki/api/v1/query_range", query='{a="b"}', start="1", end=str(time.time_ns())
    )
    assert status == 400 and "query time range exceeds the limit" in text


def test_stand_in_version_is_the_compose_image() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["loki"]["image"] == f"grafana/loki:{LOKI_VERSION}"
    assert LOKI_VERSION in (ROOT / "docs" / "logs.md").read_text()


def test_mapping_follows_loki_yaml() -> None:
    """The stand-in's index labels are exactly loki.yaml's index_label attributes."""
    from tests.loki.standin import INDEX_RESOURCE_ATTRIBUTES

    config = yaml.safe_load((ROOT / "monitoring" / "loki" / "loki.yaml").read_text())
    otlp = config["limits_config"]["otlp_config"]
    indexed = [
        a
        for c in otlp["resource_attributes"]["attributes_config"]
        if c["action"] == "index_label"
        for a in c["attributes"]
    ]
    assert tuple(indexed) == INDEX_RESOURCE_ATTRIBUTES
    assert otlp["resource_attributes"]["ignore_defaults"] is True
    assert otlp["log_attributes"] == [{"action": "structured_metadata", "regex": ".*"}]
    assert config["limits_config"]["max_structured_metadata_size"] == "64KB"


# --------------------------------------------------------------------------- properties


@given(st.text(max_size=80))
def test_label_names_are_valid_prometheus_names(attribute: str) -> None:
    name = label_name(attribute)
    assert all(c.isascii() and (c.isalnum() or c == "_") for c in name)
    assert not name[:1].isdigit()
    leading_digit = attribute[:1] != "" and attribute[:1] in "0123456789"
    assert len(name) == len(attribute) + leading_digit


@settings(max_examples=300)
@given(
    st.text(
        alphabet=st.sampled_from([*list('{}()[],|=~!"`\\ a_.*+5m'), "\udcff", "\x00", "\n", "é"]),
        max_size=40,
    )
)
def test_parser_never_crashes(query: str) -> None:
    """Any text either parses or is refused with one of the two documented errors."""
    with contextlib.suppress(logql.LogQLError, logql.NotInStandIn):
        logql.parse(query)


@given(st.text(min_size=1, max_size=60))
def test_quoted_values_round_trip(value: str) -> None:
    """A value escaped as a LogQL string matches exactly itself (what clients rely on)."""
    quoted = json.dumps(value, ensure_ascii=False)  # JSON escapes: a subset of Go's
    expr = logql.parse("{service_name=" + quoted + "}")
    assert isinstance(expr, logql.LogQuery)
    assert expr.selector[0].value == value


_ATTR_KEY = st.text(
    alphabet=st.sampled_from([*"abc.XYZ_-/ 09é", "\x00", "\n", "💥"]), min_size=1, max_size=20
)
_ATTR_VALUE = st.one_of(
    st.text(max_size=50).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(attrs=st.dictionaries(_ATTR_KEY, _ATTR_VALUE, max_size=12))
def test_any_attributes_land_as_metadata_and_stay_queryable(
    loki: LokiStandIn, attrs: dict[str, str | int]
) -> None:
    """Hostile attribute names and values: every name becomes a valid label name, values
    are kept as text, and the line is still found through a label filter."""
    needle = f"needle-{len(loki.entries())}"
    attrs = {**attrs, "correlation_id": needle}
    status, text = push(loki, request([record("hostile", attrs=attrs)]))
    assert status == 200, text
    entry = loki.entries()[-1]
    meta = dict(entry.metadata)
    for key, value in attrs.items():
        name = label_name(key)
        assert all(c.isascii() and (c.isalnum() or c == "_") for c in name)
        if sum(label_name(k) == name for k in attrs) == 1:  # no two names collide
            assert meta[name] == str(value)
    status, body = get(
        loki,
        "/loki/api/v1/query_range",
        query=f'{{service_name="checkout"}} | correlation_id="{needle}"',
    )
    assert status == 200
    assert [v[1] for s in body["data"]["result"] for v in s["values"]] == ["hostile"]
