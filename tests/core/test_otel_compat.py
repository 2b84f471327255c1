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
from pathlib import Path

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
