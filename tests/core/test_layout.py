"""The library does not depend on the applications built with it.

``otel_assist`` is what a service author installs; ``rest_service`` (the history API) and
``otel_assist_demo`` (the demo and the ``otel-assist`` command) are applications of it.
An import the other way, even a lazy one inside a function or through
``importlib.import_module("rest_service...")``, would make the library need the app's
extra and tie their releases together, so it is refused here by reading every module's
syntax tree (imports anywhere in the file, and string arguments of ``import_module`` /
``__import__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "otel_assist"
APPLICATIONS = ("rest_service", "otel_assist_demo")


def _is_application(module: str) -> bool:
    return any(module == app or module.startswith(app + ".") for app in APPLICATIONS)


def application_imports(source: str, filename: str = "<source>") -> list[str]:
    """Every application module ``source`` imports, by statement or by dynamic import."""
    hits: list[str] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            hits += [a.name for a in node.names if _is_application(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if _is_application(node.module):
                hits.append(node.module)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and _is_application(first.value)
            ):
                hits.append(first.value)
    return hits


def test_the_library_never_imports_an_application() -> None:
    modules = sorted(LIBRARY.rglob("*.py"))
    assert len(modules) > 20  # the scan reads the package, not an empty directory
    offenders = {
        str(path.relative_to(ROOT)): hits
        for path in modules
        if (hits := application_imports(path.read_text(encoding="utf-8"), str(path)))
    }
    assert offenders == {}, f"otel_assist must not import {APPLICATIONS}: {offenders}"


def test_the_scan_finds_every_kind_of_application_import() -> None:
    sample = (
        "import rest_service.app\n"
        "from rest_service.core import config\n"
        "def later():\n"
        "    from otel_assist_demo.runner import run\n"
        "    import importlib\n"
        "    importlib.import_module('rest_service.follow')\n"
        "    __import__('otel_assist_demo')\n"
        "import rest_services_other, otel_assist\n"
        "from otel_assist import demo_helpers\n"
    )
    assert application_imports(sample) == [
        "rest_service.app",
        "rest_service.core",
        "otel_assist_demo.runner",
        "rest_service.follow",
        "otel_assist_demo",
    ]


def test_the_demo_and_the_command_live_outside_the_library() -> None:
    assert not (LIBRARY / "demo").exists()
    assert not (LIBRARY / "cli.py").exists()
    assert (ROOT / "otel_assist_demo" / "runner.py").is_file()
    assert (ROOT / "otel_assist_demo" / "cli.py").is_file()
