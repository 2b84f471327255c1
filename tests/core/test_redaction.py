"""The one secret scrubber (otel_assist.redaction), on its own: by key, by shape, bounded."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_assist.redaction import MASK, Redactor, normalise_key

SECRET = st.text(string.ascii_letters + string.digits, min_size=10, max_size=16).map(
    lambda s: "zq" + s
)


def test_key_spellings_are_one_key() -> None:
    r = Redactor()
    for key in ("X-Api-Key", "api-key", "apiKey", "API_KEY", "x_api_key", "privateKey"):
        assert r.is_secret_key(key), key
    for key in ("pwd", "auth", "bearer", "access_key", "Authorization", "db_password"):
        assert r.is_secret_key(key), key
    for key in ("author", "user_id", "event_type", "passport", "queue_name"):
        assert not r.is_secret_key(key), key
    assert normalise_key("X-Api-Key") == "xapikey"


def test_operator_pattern_with_groups_masks_only_the_groups() -> None:
    r = Redactor(patterns=[r"ssn=(\d+)", r"acct-\d{4}"])
    assert r.scrub("ssn=123456 for acct-9876") == f"ssn={MASK} for {MASK}"


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60), secret=SECRET, shape=st.integers(0, 5))
def test_scrub_removes_every_shape_and_is_idempotent(text: str, secret: str, shape: int) -> None:
    r = Redactor()
    hostile = [
        f"postgresql://u:{secret}@h/db",
        f"Authorization: Bearer {secret}",
        f"password={secret}",
        f'"client_secret": "{secret}"',
        f"api-key: {secret}",
        f"Bearer {secret}",
    ][shape]
    once = r.scrub(f"{text} {hostile} {text}")
    assert secret not in once
    assert r.scrub(once) == once


@settings(max_examples=200, deadline=None)
@given(
    secret=SECRET,
    depth=st.integers(0, 60),
    key=st.sampled_from(["password", "X-Api-Key", "privateKey", "pwd", "auth", "Cookie"]),
)
def test_no_depth_hides_a_secret(secret: str, depth: int, key: str) -> None:
    value: object = {key: secret}
    for i in range(depth):
        value = [value] if i % 3 == 0 else ({"k": value} if i % 3 == 1 else (value, i))
    assert secret not in repr(Redactor().redact(value))


def test_clean_text_is_left_alone() -> None:
    r = Redactor()
    for text in (
        "user said: hi",
        "see https://example.com/a?b=c",
        "mail bob@example.com",
        "wrong password for bob",
        "2026-12-05T19:08:53.803068Z",
    ):
        assert r.scrub(text) == text


@given(
    secret=st.text(string.ascii_letters + string.digits, min_size=8, max_size=16),
    shape=st.sampled_from(
        ["x\" authorization='Basic {s}' y", "\"pwd\": '{s}' x", "a \"token\"='{s}'"]
    ),
    wraps=st.integers(1, 3),
)
def test_escaped_quotes_in_reprs_do_not_hide_a_secret(secret: str, shape: str, wraps: int) -> None:
    """A string holding both quote kinds has its ' escaped by repr() (\\'), which is how a
    value nested in a dict or list reaches a log line: found by the hostile log tests."""
    text = shape.format(s=secret)
    for _ in range(wraps):
        text = repr({"k": [text]})
    assert secret not in Redactor().scrub(text)


@pytest.mark.parametrize(
    "text",
    [
        # a repr of a string that holds a dict's repr: the quotes come backslash-escaped
        "{\\'pwd\\': \\'zq0000000000\\'}",
        "x {\\\\'pwd\\\\': \\\\'zq0000000000\\\\'} y",
        repr({"a": " " + repr(" " + repr({"pwd": "zq0000000000"}) + ' "')[1:-1], "n": 1}),
        " authorization=\\'Basic zq0000000000\\' ",
        "{\\'authorization\\': \\'Basic zq0000000000\\'}",
    ],
)
def test_secrets_behind_backslash_escaped_quotes_are_masked(text: str) -> None:
    """Found by tests/core/test_log_hostile.py (hypothesis): a key or Authorization header
    followed by \\' instead of ' kept its value."""
    scrubbed = Redactor().scrub(text)
    assert "zq0000000000" not in scrubbed
    assert MASK in scrubbed
