"""Secrets out of everything that leaves the process as text: by key, and by shape.

One module, so the log path and the history path (and anything else that writes what a
service was handed) agree on what a secret is:

* **by key**: a value under a secret-looking key (``password``, ``X-Api-Key``,
  ``privateKey``, ``access_key``, ``auth``, ...) becomes ``***``, at any depth, in any
  Mapping (dict subclasses, ``MappingProxyType``, starlette ``Headers``), sequence, set or
  dataclass. Keys are compared normalised: case, ``-``/``_``/``.`` and spaces do not
  matter, so ``X-Api-Key``, ``api-key`` and ``apiKey`` are one key. Words of four letters
  or fewer (``pwd``, ``auth``) must be a whole word of the key (``auth_header`` yes,
  ``author`` no); longer ones may appear anywhere in it (``db_password``).
* **by shape**, in every string: URL userinfo passwords (``postgresql://u:***@h/db``),
  ``Authorization: Bearer ...`` / ``Basic ...`` credentials, ``Bearer <token>`` anywhere,
  ``password=...``, ``token: ...`` and other ``<secret key><=|:><value>`` pairs (JSON and
  repr spellings too), and the operator's own regular expressions
  (``OTEL_ASSIST_SECRET_PATTERNS``).

Walking a structure is bounded: a cycle guard, a depth limit and a node budget; what lies
past a limit is replaced by a marker, never passed on unmasked. The walk also makes the
result safe to serialise anywhere: string keys, no lone surrogates (escaped as ``\\udcff``),
integers beyond 64 bits as text.

Why caches: log calls repeat the same keys and the same short strings (messages, event
types, level names) millions of times; a verdict remembered in a bounded dict makes the
common call a few hash lookups instead of regular-expression scans.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
DEPTH_MARKER = "…[too deep]"
SIZE_MARKER = "…[too large]"
CYCLE_MARKER = "…[cycle]"

# Words whose presence in a key marks its value secret (normalised: lower case, no
# separators). Settings' defaults plus OTEL_ASSIST_SECRET_KEYS are added to these.
DEFAULT_SECRET_WORDS = (
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "authorization",
    "auth",
    "bearer",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "cookie",
    "credential",
    "session_key",
    "dsn",
)
_SHORT_WORD = 4  # words this short must be a whole word of the key
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_CACHE_LIMIT = 8192
_CACHED_TEXT_MAX = 256  # longer strings rarely repeat; not remembered

_SEGMENTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def normalise_key(key: str) -> str:
    """``X-Api-Key`` → ``xapikey``: case and separators do not make a key another key."""
    return _NOT_ALNUM.sub("", key.lower())


def escape_surrogates(text: str) -> str:
    """Text that encodes as UTF-8: lone surrogates (undecodable file names, ``"\\udcff"``)
    become their escape ``\\udcff``, the same in the JSON line and the OTel record."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def safe_str(value: Any) -> str:
    """``str(value)`` that cannot raise (a ``__str__`` that fails falls back to repr, then
    to the type name) and never holds a lone surrogate."""
    try:
        text = str(value)
    except Exception:
        try:
            text = repr(value)
        except Exception:
            text = f"<unprintable {type(value).__qualname__}>"
    return escape_surrogates(text)


def compile_patterns(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    """Operator patterns, compiled; a bad one raises ``re.error`` (settings turn that into a
    message naming OTEL_ASSIST_SECRET_PATTERNS)."""
    return tuple(re.compile(p) for p in patterns if p)


class Redactor:
    """Masks secrets by key and scrubs them by shape; see the module docstring."""

    def __init__(
        self,
        words: Iterable[str] = DEFAULT_SECRET_WORDS,
        patterns: Iterable[str | re.Pattern[str]] = (),
        max_depth: int = 32,
        max_nodes: int = 2000,
    ) -> None:
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.reset(words, patterns)

    def reset(self, words: Iterable[str], patterns: Iterable[str | re.Pattern[str]] = ()) -> None:
        normalised = {normalise_key(w) for w in (*DEFAULT_SECRET_WORDS, *words)} - {""}
        self._long = tuple(sorted(w for w in normalised if len(w) > _SHORT_WORD))
        self._short = frozenset(w for w in normalised if len(w) <= _SHORT_WORD)
        self._patterns = tuple(re.compile(p) if isinstance(p, str) else p for p in patterns)
        self._key_verdicts: dict[str, bool] = {}
        self._clean_text: set[str] = set()

    # -- keys

    def is_secret_key(self, key: str) -> bool:
        verdict = self._key_verdicts.get(key)
        if verdict is None:
            verdict = self._judge_key(key)
            if len(self._key_verdicts) >= _CACHE_LIMIT:
                self._key_verdicts.clear()
            self._key_verdicts[key] = verdict
        return verdict

    def _judge_key(self, key: str) -> bool:
        flat = normalise_key(key)
        if any(w in flat for w in self._long):
            return True
        if not self._short:
            return False
        segments = {s.lower() for s in _SEGMENTS.findall(key)}
        return not self._short.isdisjoint(segments) or flat in self._short

    # -- strings

    def scrub(self, text: str) -> str:
        """``text`` with every secret-shaped part masked (and lone surrogates escaped)."""
        if text in self._clean_text:
            return text
        scrubbed = self._scrub(text)
        if scrubbed is text and len(text) <= _CACHED_TEXT_MAX:
            if len(self._clean_text) >= _CACHE_LIMIT:
                self._clean_text.clear()
            self._clean_text.add(text)
        return scrubbed

    def _scrub(self, text: str) -> str:
        original = text
        if _SHAPES.search(text) is not None:
            text = self._mask_shapes(text)
        for pattern in self._patterns:
            text = pattern.sub(_mask_operator_match, text)
        text = escape_surrogates(text)
        return original if text == original else text

    def _mask_shapes(self, text: str) -> str:
        """Mask every built-in shape, scanning left to right once: keep what names a
        credential, mask the credential. A pair whose key is not secret is kept and the
        scan goes on right after its separator (``url=`` may hold a DSN)."""
        out: list[str] = []
        pos = 0
        search = _SHAPES.search
        while (match := search(text, pos)) is not None:
            out.append(text[pos : match.start()])
            kept = match.group("url") or match.group("authhead") or match.group("bearer")
            if kept is not None:
                out.append(kept + MASK)
                pos = match.end()
                continue
            out.append(match.group("pair"))
            pos = match.end()
            if self.is_secret_key(match.group("pk")):
                value = _PAIR_VALUE.match(text, pos)
                if value is not None and value.end() > pos:
                    out.append(MASK)
                    pos = value.end()
        out.append(text[pos:])
        return "".join(out)

    # -- structures

    def redact(self, value: Any, json_numbers: bool = False) -> Any:
        """A copy of ``value`` made of dicts (string keys), lists, strings, numbers, bools
        and None, with secrets masked by key and by shape. Never raises."""
        return self._walk(value, 0, set(), _Budget(self.max_nodes, json_numbers))

    def _walk(self, value: Any, depth: int, path: set[int], budget: _Budget) -> Any:
        kind = type(value)
        if kind is str:
            return self.scrub(value)
        if value is None or kind is bool:
            return value
        if kind is float:
            return value if not budget.json_numbers or math.isfinite(value) else None
        if kind is int:
            if budget.json_numbers or _INT64_MIN <= value <= _INT64_MAX:
                return value
            return str(value)
        budget.left -= 1
        if budget.left < 0:
            return SIZE_MARKER
        if isinstance(value, str):
            return self.scrub(str.__str__(value))
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, float):
            return self._walk(float(value), depth, path, budget)
        if isinstance(value, int):
            return self._walk(int(value), depth, path, budget)
        if isinstance(value, bytes | bytearray | memoryview):
            return self.scrub(bytes(value).decode("utf-8", "backslashreplace"))
        container = isinstance(value, Mapping | list | tuple | set | frozenset) or (
            dataclasses.is_dataclass(value) and not isinstance(value, type)
        )
        if not container:
            return self.scrub(safe_str(value))
        if depth >= self.max_depth:
            return DEPTH_MARKER
        if id(value) in path:
            return CYCLE_MARKER
        path.add(id(value))
        try:
            if isinstance(value, Mapping):
                return self._walk_items(_mapping_items(value, budget.left + 1), depth, path, budget)
            if isinstance(value, list | tuple | set | frozenset):
                return self._walk_sequence(value, depth, path, budget)
            fields = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
            return self._walk_items(fields.items(), depth, path, budget)
        except Exception:  # a Mapping whose items() or a dataclass whose getattr fails
            return self.scrub(safe_str(value))
        finally:
            path.discard(id(value))

    def _walk_items(
        self, items: Iterable[tuple[Any, Any]], depth: int, path: set[int], budget: _Budget
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in items:
            budget.left -= 1
            if budget.left < 0:
                out[SIZE_MARKER] = SIZE_MARKER
                break
            name = key if type(key) is str else safe_str(key)
            name = self.scrub(name)
            if self.is_secret_key(name) and item is not None:
                out[name] = MASK
            else:
                out[name] = self._walk(item, depth + 1, path, budget)
        return out

    def _walk_sequence(
        self, items: Iterable[Any], depth: int, path: set[int], budget: _Budget
    ) -> list[Any]:
        out: list[Any] = []
        for item in items:
            budget.left -= 1
            if budget.left < 0:
                out.append(SIZE_MARKER)
                break
            out.append(self._walk(item, depth + 1, path, budget))
        return out


class _Budget:
    """Per-walk state: nodes left to visit, and how numbers come out. ``json_numbers``:
    integers stay integers however large (the stdlib JSON encoder writes them) and
    NaN/infinity become null (as orjson writes them; JSON has no spelling for them);
    otherwise integers past 64 bits become text (what OpenTelemetry can carry)."""

    __slots__ = ("json_numbers", "left")

    def __init__(self, left: int, json_numbers: bool) -> None:
        self.left = left
        self.json_numbers = json_numbers


def _mapping_items(value: Mapping[Any, Any], limit: int) -> Iterable[tuple[Any, Any]]:
    """Items of any Mapping; one whose ``items()`` is not a plain view (starlette's
    ``Headers`` has ``multi_items``) keeps every value."""
    multi = getattr(value, "multi_items", None)
    items = multi() if callable(multi) else value.items()
    return list(itertools.islice(items, limit))


_SHAPES = re.compile(
    # scheme://user:PASSWORD@host (starts only where a token starts: linear time)
    r"(?P<url>(?<![a-zA-Z0-9+.\-])[a-zA-Z][a-zA-Z0-9+.\-]*+://[^\s:/@'\"]*+:)"
    r"(?P<urlpw>[^\s@/'\"]++)(?=@)"
    # Authorization: <scheme> CREDENTIALS (header lines, reprs of header dicts)
    r"|(?P<authhead>(?i:(?<![\w-])(?:proxy-)?authorization)\\*+[\"']?\s*[:=]\s*\\*+[\"']?"
    r"(?:(?i:bearer|basic|digest|token|negotiate|apikey)\s+)?)(?P<authval>[^\s\"',;]+)"
    # Bearer TOKEN anywhere
    r"|(?P<bearer>(?i:(?<![\w-])bearer)\s+)(?P<bearerval>[A-Za-z0-9\-._~+/]+=*)"
    # key=value, key: value, "key": "value": the key is judged like a Mapping key
    # (the value is matched by _PAIR_VALUE, only after the key is found secret: matching
    # it here would rescan the rest of "a:a:a:..." at every pair, quadratic time)
    # (quotes may come backslash-escaped: a repr of a string holding a dict's repr)
    r"|(?P<pair>(?P<pk>(?<![\w.\-])[\w.\-]++)\\*+[\"']?\s*[=:]\s*\\*+[\"']?)"
)
_PAIR_VALUE = re.compile(r"(?<=\")[^\"\n]*|(?<=')[^'\n]*|[^\s\"'&,;(){}\[\]]*")


def _mask_operator_match(match: re.Match[str]) -> str:
    """An operator pattern with groups masks only its groups; without, the whole match."""
    if not match.re.groups:
        return MASK
    text = match.group(0)
    start = match.start(0)
    pieces: list[str] = []
    cursor = 0
    for index in range(1, match.re.groups + 1):
        if match.start(index) < 0 or match.start(index) - start < cursor:
            continue
        pieces.append(text[cursor : match.start(index) - start])
        pieces.append(MASK)
        cursor = match.end(index) - start
    pieces.append(text[cursor:])
    return "".join(pieces)
