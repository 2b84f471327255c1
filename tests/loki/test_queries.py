"""The query checks themselves can fail: Grafana's grammar and the semantic rules catch the
mistakes issue 11 found in the real Loki (tests/loki/queries.py)."""

from __future__ import annotations

import pytest

from tests.loki import queries

OLD_DEFAULT_VIEW = (
    'sum by (service_name) (count_over_time({service_name=~".*", '
    'deployment_environment_name=~".*"} | detected_level=~"error|critical" [1m]))'
)


def test_grafana_grammar_flags_syntax_errors() -> None:
    results = queries.lezer_parse(
        ['{a="b"}', "{a=}", '{a="b"} |', 'sum by (a) (count_over_time({a="b"} [1m]))', "{a"]
    )
    assert [bool(r["errors"]) for r in results] == [False, True, True, False, True]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        (OLD_DEFAULT_VIEW, "empty-compatible"),
        ('{service_name=~".+"} | detected_level="warning"', "not Loki level values"),
        ('{service_name=~".+"} | detected_level=~"critical|error"', "not Loki level values"),
        ('{service_name=~".+"} | detected_level=~"error|warn"', "without fatal"),
    ],
)
def test_semantic_rules_catch_what_loki_refuses_or_never_matches(query: str, problem: str) -> None:
    assert any(problem in p for p in queries.semantic_problems(query))


def test_fixed_queries_pass() -> None:
    fixed = OLD_DEFAULT_VIEW.replace('".*"', '".+"').replace("critical", "fatal")
    assert queries.semantic_problems(fixed) == []
    assert not queries.lezer_parse([fixed])[0]["errors"]


def test_grafana_all_value_and_text_value_options_expand() -> None:
    variables = [
        {"name": "service", "type": "query", "current": {"value": ["$__all"]}, "allValue": ".+"},
        {"name": "level", "type": "custom", "current": {"value": ["$__all"]}, "allValue": ".+"},
        {"name": "user_id", "type": "textbox", "query": ".*", "current": {"value": ".*"}},
    ]
    expr = '{service_name=~"$service"} | detected_level=~"$level" | user_id=~"$user_id"'
    out = queries.expansions(expr, variables, {"level": ["warn"], "user_id": ["7"]})
    assert out[0][1] == '{service_name=~".+"} | detected_level=~".+" | user_id=~".*"'
    assert (("level", "warn"),) in [v for v, _ in out]
    assert '{service_name=~".+"} | detected_level=~".+" | user_id=~"7"' in [e for _, e in out]
