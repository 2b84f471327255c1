"""The LogQL subset the Loki STAND-IN understands (this is not Loki; no Loki code is used).

Written from Loki's documentation (https://grafana.com/docs/loki/v3.7.x/query/), covering
exactly what the project's own queries use:

- a stream selector ``{name op "value", ...}`` with ``=``, ``!=``, ``=~``, ``!~``;
- line filters ``|=``, ``!=``, ``|~``, ``!~``;
- label filters ``| name op "value"`` on stream labels and structured metadata;
- ``count_over_time(<log query> [range])`` and ``rate(...)``, wrapped in
  ``sum [by (labels)] (...)`` (the ``by`` clause before or after the parentheses).

Two kinds of refusal, kept apart on purpose:

- ``LogQLError``: what the real Loki refuses too (a syntax error; a selector whose every
  matcher is empty-compatible). Messages follow Loki's wording.
- ``NotInStandIn``: valid LogQL this stand-in does not implement (``| json``, ``topk``, ...).
  A test that hits this must grow the stand-in, not conclude the query is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Loki's documented error when no matcher of the selector excludes the empty string
# (https://grafana.com/docs/loki/v3.7.x/query/log_queries/#log-stream-selector: "at least one
# matcher that is not empty-compatible"); the exact text was seen from Loki 3.7 (issue 11).
EMPTY_COMPATIBLE_ERROR = (
    "parse error : queries require at least one regexp or equality matcher that does not "
    'have an empty-compatible value. For instance, app=~".*" does not meet this requirement, '
    'but app=~".+" will'
)

#: Pipeline stages that exist in LogQL but not in this stand-in.
UNIMPLEMENTED_STAGES = frozenset(
    {
        "json",
        "logfmt",
        "pattern",
        "regexp",
        "unpack",
        "line_format",
        "label_format",
        "unwrap",
        "drop",
        "keep",
        "decolorize",
    }
)
#: Aggregations / range functions that exist in LogQL but not in this stand-in.
UNIMPLEMENTED_FUNCTIONS = frozenset(
    {
        "avg",
        "min",
        "max",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "sort",
        "sort_desc",
        "bytes_over_time",
        "bytes_rate",
        "avg_over_time",
        "sum_over_time",
        "min_over_time",
        "max_over_time",
        "quantile_over_time",
        "first_over_time",
        "last_over_time",
        "absent_over_time",
        "label_replace",
        "vector",
    }
)

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_NS = {
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86400 * 10**9,
    "w": 7 * 86400 * 10**9,
    "y": 365 * 86400 * 10**9,
}


class LogQLError(ValueError):
    """A query the real Loki refuses (HTTP 400 with this text)."""


class NotInStandIn(ValueError):
    """Valid LogQL outside the stand-in's subset."""


# --------------------------------------------------------------------------- the AST


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str  # = != =~ !~
    value: str

    def matches(self, actual: str) -> bool:
        # Loki label matchers are Prometheus matchers: regexes are anchored at both ends
        # (https://grafana.com/docs/loki/v3.7.x/query/log_queries/#log-stream-selector).
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = re.fullmatch(self.value, actual, re.DOTALL) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True)
class LineFilter:
    op: str  # |= != |~ !~
    value: str

    def keeps(self, line: str) -> bool:
        # Line filters: |= / != are substring tests; |~ / !~ are unanchored RE2 searches
        # (https://grafana.com/docs/loki/v3.7.x/query/log_queries/#line-filter-expression).
        if self.op == "|=":
            return self.value in line
        if self.op == "!=":
            return self.value not in line
        hit = re.search(self.value, line) is not None
        return hit if self.op == "|~" else not hit


@dataclass(frozen=True)
class LabelFilter:
    matcher: Matcher

    def keeps(self, labels: dict[str, str]) -> bool:
        # A label filter sees stream labels, structured metadata and parsed labels alike; a
        # label the line does not have compares as the empty string
        # (https://grafana.com/docs/loki/v3.7.x/query/log_queries/#label-filter-expression).
        return self.matcher.matches(labels.get(self.matcher.name, ""))


@dataclass(frozen=True)
class LogQuery:
    selector: tuple[Matcher, ...]
    stages: tuple[LineFilter | LabelFilter, ...]


@dataclass(frozen=True)
class RangeAggregation:
    function: str  # count_over_time | rate
    query: LogQuery
    range_ns: int


@dataclass(frozen=True)
class VectorAggregation:
    function: str  # sum
    by: tuple[str, ...] | None
    inner: RangeAggregation | VectorAggregation


Expr = LogQuery | RangeAggregation | VectorAggregation


# --------------------------------------------------------------------------- lexer


@dataclass(frozen=True)
class Token:
    kind: str  # punct | op | string | ident | duration | number | eof
    text: str
    col: int
    value: str = ""


_PUNCT = "{}()[],"
_OPS = ("|=", "|~", "!=", "!~", "=~", "=", "|")


def _unquote_double(text: str, start: int, col: int) -> tuple[str, int]:
    """A Go interpreted string literal (LogQL uses Go's syntax); returns (value, end)."""
    out: list[str] = []
    i = start + 1
    simple = {
        "n": "\n",
        "t": "\t",
        "r": "\r",
        "f": "\f",
        "v": "\v",
        '"': '"',
        "\\": "\\",
        "a": "\a",
        "b": "\b",
    }
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\n":
            break
        if ch == "\\":
            if i + 1 >= len(text):
                break
            nxt = text[i + 1]
            if nxt in simple:
                out.append(simple[nxt])
                i += 2
                continue
            if nxt in "uU" or nxt == "x":
                width = {"u": 4, "U": 8, "x": 2}[nxt]
                digits = text[i + 2 : i + 2 + width]
                if len(digits) == width and all(c in "0123456789abcdefABCDEF" for c in digits):
                    out.append(chr(int(digits, 16)))
                    i += 2 + width
                    continue
            # Go refuses unknown escapes such as "\." inside "..." (use `...` for regexes).
            raise LogQLError(f"parse error at line 1, col {col}: invalid char escape")
        out.append(ch)
        i += 1
    raise LogQLError(f"parse error at line 1, col {col}: literal not terminated")


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(query):
        ch = query[i]
        col = i + 1
        if ch in " \t\r\n":
            i += 1
            continue
        if ch in _PUNCT:
            tokens.append(Token("punct", ch, col))
            i += 1
            continue
        op = next((o for o in _OPS if query.startswith(o, i)), None)
        if op is not None:
            tokens.append(Token("op", op, col))
            i += len(op)
            continue
        if ch == '"':
            value, i = _unquote_double(query, i, col)
            tokens.append(Token("string", query[col - 1 : i], col, value))
            continue
        if ch == "`":
            end = query.find("`", i + 1)
            if end < 0:
                raise LogQLError(f"parse error at line 1, col {col}: literal not terminated")
            tokens.append(Token("string", query[i : end + 1], col, query[i + 1 : end]))
            i = end + 1
            continue
        m = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+").match(query, i)
        if m:
            tokens.append(Token("duration", m.group(), col))
            i = m.end()
            continue
        m = re.compile(r"\d+(?:\.\d+)?").match(query, i)
        if m:
            tokens.append(Token("number", m.group(), col))
            i = m.end()
            continue
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(query, i)
        if m:
            tokens.append(Token("ident", m.group(), col))
            i = m.end()
            continue
        raise LogQLError(f"parse error at line 1, col {col}: syntax error: unexpected {ch!r}")
    tokens.append(Token("eof", "", len(query) + 1))
    return tokens


def parse_duration(text: str) -> int:
    """A Prometheus-style duration (``5m``, ``1h30m``) in nanoseconds."""
    total, pos = 0, 0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            raise LogQLError(f"parse error : not a valid duration string: {text!r}")
        total += int(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(text) or total <= 0:
        raise LogQLError(f"parse error : not a valid duration string: {text!r}")
    return total


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, query: str) -> None:
        self.tokens = tokenize(query)
        self.pos = 0

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.pos += 1
        return token

    def unexpected(self, token: Token) -> LogQLError:
        # Loki's parser names the token it did not expect and its column.
        what = "end of input" if token.kind == "eof" else repr(token.text)
        return LogQLError(
            f"parse error at line 1, col {token.col}: syntax error: unexpected {what}"
        )

    def expect(self, kind: str, text: str | None = None) -> Token:
        token = self.take()
        if token.kind != kind or (text is not None and token.text != text):
            raise self.unexpected(token)
        return token

    def parse(self) -> Expr:
        expr = self.expr()
        if self.peek().kind != "eof":
            raise self.unexpected(self.peek())
        return expr

    def expr(self) -> Expr:
        token = self.peek()
        if token.kind == "punct" and token.text == "{":
            return self.log_query()
        if token.kind == "ident":
            if token.text == "sum":
                return self.vector_aggregation()
            if token.text in ("count_over_time", "rate"):
                return self.range_aggregation()
            if token.text in UNIMPLEMENTED_FUNCTIONS:
                raise NotInStandIn(f"{token.text} is valid LogQL but not in the stand-in")
        raise self.unexpected(token)

    def by_clause(self) -> tuple[str, ...]:
        keyword = self.take()
        if keyword.text == "without":
            raise NotInStandIn("'without' grouping is not in the stand-in")
        self.expect("punct", "(")
        names = [self.expect("ident").text]
        while self.peek().text == ",":
            self.take()
            names.append(self.expect("ident").text)
        self.expect("punct", ")")
        return tuple(names)

    def vector_aggregation(self) -> VectorAggregation:
        function = self.take().text
        by = None
        if self.peek().kind == "ident" and self.peek().text in ("by", "without"):
            by = self.by_clause()
        self.expect("punct", "(")
        inner = self.expr()
        if isinstance(inner, LogQuery):
            # Loki: a vector aggregation needs a metric query inside, not log lines.
            raise LogQLError("parse error : invalid aggregation sum without unwrap or range vector")
        self.expect("punct", ")")
        if self.peek().kind == "ident" and self.peek().text in ("by", "without"):
            if by is not None:
                raise self.unexpected(self.peek())
            by = self.by_clause()
        return VectorAggregation(function, by, inner)

    def range_aggregation(self) -> RangeAggregation:
        function = self.take().text
        self.expect("punct", "(")
        query = self.log_query()
        self.expect("punct", "[")
        duration = self.take()
        if duration.kind != "duration":
            raise self.unexpected(duration)
        range_ns = parse_duration(duration.text)
        self.expect("punct", "]")
        self.expect("punct", ")")
        return RangeAggregation(function, query, range_ns)

    def matcher(self) -> Matcher:
        name = self.expect("ident").text
        op = self.take()
        if op.kind != "op" or op.text not in ("=", "!=", "=~", "!~"):
            raise self.unexpected(op)
        value = self.expect("string").value
        if op.text in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise LogQLError(f"parse error : error parsing regexp: {exc}") from None
        return Matcher(name, op.text, value)

    def log_query(self) -> LogQuery:
        self.expect("punct", "{")
        matchers = [self.matcher()]
        while self.peek().text == ",":
            self.take()
            matchers.append(self.matcher())
        self.expect("punct", "}")
        # Loki refuses a selector that every stream matches: at least one matcher must
        # reject the empty string (docs: log stream selector; the text is Loki 3.7's).
        if all(m.matches("") for m in matchers):
            raise LogQLError(EMPTY_COMPATIBLE_ERROR)
        stages: list[LineFilter | LabelFilter] = []
        while self.peek().kind == "op":
            op = self.take()
            if op.text in ("|=", "!=", "|~", "!~"):
                value = self.expect("string").value
                if op.text in ("|~", "!~"):
                    try:
                        re.compile(value)
                    except re.error as exc:
                        raise LogQLError(f"parse error : error parsing regexp: {exc}") from None
                stages.append(LineFilter(op.text, value))
            elif op.text == "|":
                nxt = self.peek()
                if nxt.kind == "ident" and nxt.text in UNIMPLEMENTED_STAGES:
                    raise NotInStandIn(f"| {nxt.text} is valid LogQL but not in the stand-in")
                if nxt.kind == "ident" and self.peek(1).kind == "op":
                    stages.append(LabelFilter(self.matcher()))
                else:
                    raise self.unexpected(nxt)
            else:
                raise self.unexpected(op)
        return LogQuery(tuple(matchers), tuple(stages))


def parse(query: str) -> Expr:
    """The AST of ``query``; ``LogQLError`` for what Loki refuses, ``NotInStandIn`` else."""
    if not query.strip():
        raise LogQLError("parse error : syntax error: unexpected end of input")
    return _Parser(query).parse()
