"""Private OpenTelemetry names are imported in one module only: otel_assist/_otel_compat.py.

A private name is any dotted segment of an ``opentelemetry`` import that starts with ``_``
(``opentelemetry.sdk._logs``, ``opentelemetry.metrics._internal``, ``_Gauge``). The
scan covers the shipped code (otel_assist, otel_assist_demo, rest_service) and the
benchmarks; tests may
compare against upstream internals on purpose (the OTLP encoder test decodes with the
stock encoder).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import otel_assist._otel_compat as compat

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("otel_assist", "otel_assist_demo", "rest_service", "bench")
ALLOWED = ROOT / "otel_assist" / "_otel_compat.py"


def _private(module: str, names: list[str]) -> list[str]:
    if not (module == "opentelemetry" or module.startswith("opentelemetry.")):
        return []
    found = [module] if any(part.startswith("_") for part in module.split(".")) else []
    return found + [f"{module}.{n}" for n in names if n.startswith("_")]


def private_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    hits: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            hits += _private(node.module, [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                hits += _private(alias.name, [])
    return hits


def test_no_private_opentelemetry_import_outside_the_compat_module() -> None:
    offenders = {
        str(path.relative_to(ROOT)): hits
        for top in SCANNED
        for path in sorted((ROOT / top).rglob("*.py"))
        if path != ALLOWED and (hits := private_imports(path))
    }
    assert offenders == {}, f"import these through otel_assist._otel_compat: {offenders}"


def test_the_scan_finds_a_private_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from opentelemetry.sdk._logs import LoggerProvider\n"
        "from opentelemetry.metrics import _Gauge\n"
        "import opentelemetry._logs\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
    )
    assert private_imports(sample) == [
        "opentelemetry.sdk._logs",
        "opentelemetry.metrics._Gauge",
        "opentelemetry._logs",
    ]


def test_the_compat_module_resolves_every_name_it_exports() -> None:
    missing = [name for name in compat.__all__ if getattr(compat, name, None) is None]
    assert missing == []


def test_the_runtime_context_var_is_the_one_the_public_api_reads_and_writes() -> None:
    from opentelemetry import context

    from otel_assist import correlation

    var = compat.runtime_context_var()
    assert var is not None  # the default runtime context (contextvars) is in use
    probe = context.Context({"probe": 1})
    token = correlation.attach(probe)
    try:
        assert context.get_current() is probe
        assert correlation.current_context() is probe
    finally:
        correlation.detach(token)
    assert context.get_current() is not probe
    public = context.attach(probe)
    try:
        assert correlation.current_context() is probe
    finally:
        context.detach(public)


class _Delegating:
    """A runtime context that hands every call to the API's real one but keeps no
    ContextVar of its own under the probed name."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def attach(self, ctx: Any) -> Any:
        return self._real.attach(ctx)

    def get_current(self) -> Any:
        return self._real.get_current()

    def detach(self, token: Any) -> None:
        self._real.detach(token)


@contextmanager
def _runtime_context(make: Callable[[Any], Any]) -> Iterator[None]:
    """The API's runtime context replaced by ``make(real)`` for a block (set by name: no
    private import here either)."""
    from opentelemetry import context as api

    name = "_RUNTIME_CONTEXT"
    real = getattr(api, name)
    setattr(api, name, make(real))
    try:
        yield
    finally:
        setattr(api, name, real)


def test_another_runtime_context_keeps_the_public_functions() -> None:
    """A runtime context that does not keep a ContextVar under the probed name (another
    implementation, a future layout): no variable, so correlation's callers would stay on
    opentelemetry.context's functions."""
    with _runtime_context(_Delegating):
        assert compat.runtime_context_var() is None
    assert compat.runtime_context_var() is not None


def test_a_context_var_the_api_does_not_use_is_refused() -> None:
    """The probe checks both ways: a ContextVar under the right name that the API does not
    read is not taken."""

    def decoy(real: Any) -> _Delegating:
        runtime = _Delegating(real)
        runtime._current_context = ContextVar("decoy", default=None)  # type: ignore[attr-defined]
        return runtime

    with _runtime_context(decoy):
        assert compat.runtime_context_var() is None
