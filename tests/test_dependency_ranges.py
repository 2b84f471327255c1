"""otel-assist's dependency ranges, tested at both ends and against the ecosystem.

- **Resolver**: pip must find one set of versions for otel-assist together with the
  OpenTelemetry packages its users already run (the asyncpg, structlog, redis and SQLAlchemy
  instrumentations, Logfire, Elastic's EDOT). Exact pins made that impossible before.
- **Lowest versions**: the core tests (tests/core) run in a throwaway venv in which every
  core dependency is at the lowest version pyproject.toml allows (tests/compat/lowest.txt).
  The upper end is what the project's own venv resolves, where the rest of the suite runs.

Both use the package index through pip (its cache makes repeated runs quick); the lowest
venv is kept under ~/.cache/otel-assist keyed by the files that decide its contents.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
LOWEST = ROOT / "tests" / "compat" / "lowest.txt"

ECOSYSTEM = [
    "opentelemetry-instrumentation-asyncpg",
    "opentelemetry-instrumentation-structlog",
    "opentelemetry-instrumentation-redis",
    "opentelemetry-instrumentation-sqlalchemy",
    "logfire",
    "elastic-opentelemetry",
]
# Test tools for the lowest venv: the dev extra's, minus linters, the browser and its rerun
# plugin, and the self-reference (they are not needed to run tests/core).
NOT_FOR_CORE_TESTS = (
    "otel-assist",
    "ruff",
    "mypy",
    "types-",
    "schemathesis",
    "playwright",
    "pytest-rerunfailures",
)
# What tests/core imports beyond the core: the ASGI app (rest), Redis and APScheduler
# (queues) and the embedded demo (demo, which includes both).
EXTRAS = "demo"


def _pip(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )


def test_otel_assist_resolves_beside_the_ecosystem(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = _pip(
        "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
        str(ROOT), *ECOSYSTEM,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    chosen = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    for name in ["otel-assist", *ECOSYSTEM]:
        assert name in chosen, f"{name} missing from the resolution"


def _lower_bounds() -> dict[str, str]:
    """Each core dependency's lower bound, as written in pyproject.toml."""
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    bounds = {}
    for spec in deps:
        match = re.match(r"^([A-Za-z0-9_.-]+)\s*>=\s*([^,;\s]+)", spec)
        if match:
            bounds[match.group(1).lower()] = match.group(2)
    return bounds


def _pinned(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_the_lowest_constraints_are_the_lower_bounds() -> None:
    bounds = _lower_bounds()
    pins = _pinned(LOWEST)
    for name in ("opentelemetry-api", "opentelemetry-sdk", "opentelemetry-instrumentation"):
        assert name in bounds, f"{name} has no lower bound in pyproject.toml"
    mismatched = {
        n: (bounds[n], pins.get(n))
        for n in bounds
        if n.startswith(("opentelemetry", "structlog"))
        and (n not in pins or Version(pins[n]) != Version(bounds[n]))
    }
    assert mismatched == {}, "tests/compat/lowest.txt must pin each lower bound"


def _test_tools() -> list[str]:
    dev = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]["dev"]
    return [spec for spec in dev if not spec.lower().startswith(NOT_FOR_CORE_TESTS)]


@pytest.fixture(scope="module")
def lowest_venv() -> Path:
    # The checkout's path too: the venv's editable install points at this checkout.
    key = LOWEST.read_bytes() + PYPROJECT.read_bytes() + EXTRAS.encode() + str(ROOT).encode()
    digest = hashlib.sha256(key).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "otel-assist"
    where = cache / f"lowest-venv-{digest}"
    python = where / "bin" / "python"
    if (where / ".complete").exists():
        return where
    shutil.rmtree(where, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=300)
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(LOWEST),
         "-e", f"{ROOT}[{EXTRAS}]", *_test_tools()],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (where / ".complete").touch()
    return where


def test_core_tests_pass_at_the_lowest_allowed_versions(lowest_venv: Path) -> None:
    python = lowest_venv / "bin" / "python"
    versions = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m, json; print(json.dumps("
         "{d: m.version(d) for d in ('opentelemetry-sdk', 'opentelemetry-instrumentation',"
         " 'structlog')}))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    installed = json.loads(versions.stdout)
    pins = _pinned(LOWEST)
    assert installed == {name: pins[name] for name in installed}
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = subprocess.run(
        [str(python), "-m", "pytest", "tests/core", "-q", "-x", "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
