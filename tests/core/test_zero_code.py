"""``opentelemetry-instrument`` on unmodified programs: Redis metrics without code, and a
start-up that another distro cannot silently take over.

Real programs: the venv's ``opentelemetry-instrument``, a real redis-server, and (for the
hijack test) the stock ``opentelemetry-distro`` installed into a throwaway venv layered on
this one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests import metric_reader, servers

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
APP = ROOT / "tests" / "core" / "apps" / "foreign_redis_app.py"


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app alone in a directory: run from there, nothing of the repository (such as
    its ``otel_assist.egg-info``) comes first on sys.path, as in a real deployment."""
    where = tmp_path_factory.mktemp("foreign-app")
    shutil.copy(APP, where / APP.name)
    return where


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.pop("PYTHONPATH", None)
    env.update(
        {
            "OTEL_SERVICE_NAME": "foreign_redis_app",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_ASSIST_PROMETHEUS_PORT": "0",
        }
    )
    env.update(extra)
    return env


def _run(bin_dir: Path, app_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "opentelemetry-instrument"), str(bin_dir / "python"), APP.name],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _count(metrics: str, operation: str) -> float:
    name = "db_client_operation_duration_seconds_count"
    return metric_reader.value(metrics, name, db_operation_name=operation)


def test_every_redis_client_of_an_unmodified_app_is_measured_once(
    redis_server: servers.Redis, app_dir: Path
) -> None:
    proc = _run(VENV_BIN, app_dir, _env(REDIS_URL=redis_server.url))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    metrics = report["metrics"]
    # sync client: 5 SET + 1 GET + 1 pipeline; asyncio client: LPUSH, RPOP, 1 pipeline.
    # Exactly these counts: a second wrapper (the stock instrumentor, or ours twice) would
    # not add spans to this exposition, but connect()-style double instrumenting would
    # double them.
    assert _count(metrics, "SET") == 5
    assert _count(metrics, "GET") == 1
    assert _count(metrics, "LPUSH") == 1
    assert _count(metrics, "RPOP") == 1
    assert _count(metrics, "PIPELINE") == 2
    # The card's opentelemetry-instrumentation-redis is installed (queues extra) but not
    # loaded: no class-level wrapt proxy, so no span per command on the hot path.
    assert report["stock_wrapped"] is False
    assert report["tracer_provider"] != "TracerProvider"  # no SDK TracerProvider


@pytest.fixture(scope="module")
def venv_with_stock_distro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv layered on this one (a .pth adds our site-packages after its own), with the
    stock opentelemetry-distro installed first in sys.path, so entry-point order favours
    it: the situation in which opentelemetry-instrument used to pick the stock distro."""
    root = tmp_path_factory.mktemp("stock-distro-venv")
    venv.EnvBuilder(with_pip=False).create(root)
    site = next((root / "lib").glob("python3*/site-packages"))
    ours = next(Path(p) for p in sys.path if p.endswith("site-packages") and "lib" in p)
    # addsitedir (not a bare path) so that our site-packages' own .pth files run too: the
    # editable install of otel-assist is one.
    (site / "zz_otel_assist_base.pth").write_text(f"import site; site.addsitedir({str(ours)!r})\n")
    version = _installed_version("opentelemetry-instrumentation")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            f"opentelemetry-distro=={version}",
        ],
        check=True,
        timeout=300,
    )
    for script in ("opentelemetry-instrument",):
        target = root / "bin" / script
        target.write_text(
            f"#!{root / 'bin' / 'python'}\n"
            "from opentelemetry.instrumentation.auto_instrumentation import run\n"
            "run()\n"
        )
        target.chmod(0o755)
    return root / "bin"


def _installed_version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def test_another_distro_winning_by_order_stops_with_the_variables_to_set(
    venv_with_stock_distro: Path, redis_server: servers.Redis, app_dir: Path
) -> None:
    # console: the stock configurator's default (OTLP over gRPC) is not installed here; with
    # it, the stock configurator would succeed in the same way and install its provider.
    env = _env(REDIS_URL=redis_server.url, OTEL_TRACES_EXPORTER="console")
    proc = _run(venv_with_stock_distro, app_dir, env)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "OTEL_PYTHON_DISTRO=otel_assist OTEL_PYTHON_CONFIGURATOR=otel_assist" in proc.stderr
    assert '"metrics"' not in proc.stdout  # the application never ran


def test_naming_our_distro_wins_over_the_stock_one(
    venv_with_stock_distro: Path, redis_server: servers.Redis, app_dir: Path
) -> None:
    env = _env(
        REDIS_URL=redis_server.url,
        OTEL_PYTHON_DISTRO="otel_assist",
        OTEL_PYTHON_CONFIGURATOR="otel_assist",
    )
    proc = _run(venv_with_stock_distro, app_dir, env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["tracer_provider"] != "TracerProvider"
    assert _count(report["metrics"], "SET") == 5


def test_naming_the_stock_distro_is_obeyed(
    venv_with_stock_distro: Path, redis_server: servers.Redis, app_dir: Path
) -> None:
    env = _env(
        REDIS_URL=redis_server.url,
        OTEL_PYTHON_DISTRO="distro",
        OTEL_PYTHON_CONFIGURATOR="configurator",
        OTEL_TRACES_EXPORTER="none",
    )
    proc = _run(venv_with_stock_distro, app_dir, env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    # otel-assist stays out of the way: no Redis metric of ours
    assert _count(report["metrics"], "SET") == 0


#: Elastic's distribution (EDOT) pins exact OpenTelemetry versions, so it cannot be layered
#: over this venv like the stock distro: it gets a venv of its own, resolved by pip with
#: otel-assist (1.18.0 pins opentelemetry 1.45.1, inside our range).
EDOT = "elastic-opentelemetry==1.18.0"


@pytest.fixture(scope="module")
def venv_with_edot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with otel-assist (editable, queues extra) and EDOT, both installed by
    pip with their dependencies: EDOT registers its own distro and configurator."""
    root = tmp_path_factory.mktemp("edot-venv")
    venv.EnvBuilder(with_pip=True).create(root)
    subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", "-e", f"{ROOT}[queues]", EDOT],
        check=True,
        timeout=600,
    )  # fmt: skip
    return root / "bin"


def test_edot_installed_too_cannot_take_over_silently(
    venv_with_edot: Path, redis_server: servers.Redis, app_dir: Path
) -> None:
    """With EDOT beside otel-assist: unnamed, the start stops with the variables to set
    (exit 2, the app never runs); named, otel-assist configures the process and no SDK
    TracerProvider is installed."""
    base = {"REDIS_URL": redis_server.url, "OTEL_TRACES_EXPORTER": "none"}
    unnamed = _run(venv_with_edot, app_dir, _env(**base))
    assert unnamed.returncode == 2, (unnamed.stdout, unnamed.stderr)
    assert "OTEL_PYTHON_DISTRO=otel_assist OTEL_PYTHON_CONFIGURATOR=otel_assist" in unnamed.stderr
    assert '"metrics"' not in unnamed.stdout

    named = _run(
        venv_with_edot,
        app_dir,
        _env(**base, OTEL_PYTHON_DISTRO="otel_assist", OTEL_PYTHON_CONFIGURATOR="otel_assist"),
    )
    assert named.returncode == 0, named.stderr
    report = json.loads(named.stdout.strip().splitlines()[-1])
    assert report["tracer_provider"] != "TracerProvider"
    assert _count(report["metrics"], "SET") == 5
