"""The package as a user gets it: the built wheel and sdist, installed into fresh venvs.

One venv per extra (none, fastapi, queues, rest, demo), each with that extra alone. In
each, every command-line and import entry point either works or stops with the one line
that names its extra; never a ``No module named ...`` traceback. Venvs live in a temporary
directory and pip's cache is reused, so the dependencies are not downloaded again.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests import servers

# Five venvs with their dependencies (from pip's cache) take minutes on a loaded machine.
pytestmark = pytest.mark.timeout(1800)

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("", "fastapi", "queues", "rest", "demo")
# Extras that bring redis-py ([rest] has it for the live queue view).
REDIS_EXTRAS = {"queues", "rest", "demo"}
# What each extra makes available (an extra includes another only where pyproject says so).
PROVIDES = {
    "": set(),
    "fastapi": {"fastapi"},
    "queues": {"queues"},
    "rest": {"rest"},
    "demo": {"demo", "rest", "queues"},
}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    out = tmp_path_factory.mktemp("dist")
    run = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist, "log": run.stdout + run.stderr}


def test_build_has_no_deprecation_warnings(dist: dict[str, Path | str]) -> None:
    log = str(dist["log"])
    assert "SetuptoolsDeprecationWarning" not in log, log[-4000:]
    assert "project.license" not in log, log[-4000:]


def test_twine_check_is_clean(dist: dict[str, Path | str]) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "twine",
            "check",
            "--strict",
            str(dist["wheel"]),
            str(dist["sdist"]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("PASSED") == 2, run.stdout


def test_metadata_names_the_license_and_the_extras(dist: dict[str, Path | str]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as whl:
        meta_name = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(whl.read(meta_name).decode())
        assert any(n.endswith("licenses/LICENSE") for n in whl.namelist())
        # the package data the runtime needs
        names = whl.namelist()
        assert any(n.startswith("rest_service/admin/") and n.endswith(".html") for n in names)
        assert "otel_assist/py.typed" in names
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert set(meta.get_all("Provides-Extra") or []) >= {"fastapi", "queues", "rest", "demo"}
    with tarfile.open(dist["sdist"]) as sdist:
        assert any(m.name.endswith("/LICENSE") for m in sdist.getmembers())


def _make_venv(where: Path, wheel: Path, extra: str) -> Path:
    # No pip inside (ensurepip costs more than the install): the outer pip installs into it.
    venv.EnvBuilder(with_pip=False, clear=True).create(where)
    py = where / "bin" / "python"
    target = f"{wheel}[{extra}]" if extra else str(wheel)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--disable-pip-version-check",
            target,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, f"[{extra}] " + run.stdout[-3000:] + run.stderr[-3000:]
    return py


@pytest.fixture(scope="module")
def venvs(
    dist: dict[str, Path | str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Path]]:
    base = tmp_path_factory.mktemp("venvs")
    wheel = Path(dist["wheel"])
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {e: pool.submit(_make_venv, base / (e or "core"), wheel, e) for e in EXTRAS}
        yield {e: f.result() for e, f in futures.items()}


def _run(py: Path, *argv: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "REDIS_URL"))}
    env.update(
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{servers.free_port()}",
        PATH=f"{py.parent}:{env.get('PATH', '')}",
    )
    env.pop("PYTHONPATH", None)
    # cwd outside the repository, so the checkout's sources cannot shadow the installed wheel
    return subprocess.run(
        [*argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _names_extra(run: subprocess.CompletedProcess[str], what: str, extra: str) -> None:
    line = f"{what} needs the [{extra}] extra: pip install 'otel-assist[{extra}]'"
    err = run.stderr.strip()
    assert run.returncode != 0
    assert "No module named" not in err, err
    assert err.splitlines()[-1].endswith(line), err


@pytest.mark.parametrize("extra", EXTRAS)
def test_entry_points_work_or_name_their_extra(
    extra: str, venvs: dict[str, Path], tmp_path: Path
) -> None:
    py = venvs[extra]
    has = PROVIDES[extra]
    bindir = py.parent

    # the core CLI and library: always there (otel_assist.testing is the pytest11 plugin,
    # loaded by pytest itself, so it needs nothing but pytest)
    run = _run(py, str(bindir / "otel-assist"), "--help", cwd=tmp_path)
    assert run.returncode == 0 and "demo" in run.stdout, run.stderr
    run = _run(
        py,
        str(py),
        "-c",
        "import otel_assist, otel_assist.web.asgi; otel_assist.configure('pkg_check'); print('ok')",
        cwd=tmp_path,
    )
    assert run.stdout.strip().endswith("ok"), run.stderr

    # rest-service: one line without [rest], its help (with defaults) with it
    run = _run(py, str(bindir / "rest-service"), "serve", "--help", cwd=tmp_path)
    if "rest" in has:
        assert run.returncode == 0 and "(default: 8000)" in run.stdout, run.stderr
    else:
        assert run.stderr.strip() == (
            "rest-service needs the [rest] extra: pip install 'otel-assist[rest]'"
        ), run.stderr
        assert run.returncode == 2

    # otel-assist demo: one line without [demo]; runs and stops cleanly with it
    port = str(servers.free_port())
    run = _run(
        py,
        str(bindir / "otel-assist"),
        "demo",
        "--duration",
        "3",
        "--port",
        port,
        cwd=tmp_path,
        timeout=180,
    )
    if "demo" in has:
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "history flushed into rest_service" in run.stdout + run.stderr
    else:
        assert run.stderr.strip() == (
            "otel-assist demo needs the [demo] extra: pip install 'otel-assist[demo]'"
        ), run.stderr
        assert run.returncode == 2

    # import entry points of the queues extra (otel_assist.queues itself loads its redis
    # names on first use, so the envelope stays importable without the extra)
    for module, code in (
        ("otel_assist.queues", "from otel_assist.queues import QueueConsumer"),
        ("otel_assist.queues.redis_client", "import otel_assist.queues.redis_client"),
    ):
        run = _run(py, str(py), "-c", code, cwd=tmp_path)
        if extra in REDIS_EXTRAS:  # these modules need redis-py alone
            assert run.returncode == 0, run.stderr
        else:
            _names_extra(run, module, "queues")
    run = _run(py, str(py), "-c", "import otel_assist.queues.envelope", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    run = _run(
        py,
        str(py),
        "-c",
        "from apscheduler.schedulers.background import BackgroundScheduler as S\n"
        "from otel_assist.jobs import track_scheduler\ntrack_scheduler(S())"
        if "queues" in has
        else "from otel_assist.jobs import track_scheduler\ntrack_scheduler(object())",
        cwd=tmp_path,
    )
    if "queues" in has:
        assert run.returncode == 0, run.stderr
    else:
        _names_extra(run, "otel_assist.jobs.track_scheduler", "queues")

    # the FastAPI quickstart: runs with [fastapi] (or anything that brings FastAPI)
    quickstart = (ROOT / "examples" / "fastapi_service.py").read_text()
    (tmp_path / "svc.py").write_text(quickstart)
    run = _run(py, str(py), "-c", "import svc; print(svc.app.title)", cwd=tmp_path)
    if has & {"fastapi", "rest", "demo"}:
        assert run.returncode == 0 and "FastAPI" in run.stdout, run.stderr
    else:
        assert (
            "No module named 'fastapi'" in run.stderr
        )  # the reader's own import; docs say [fastapi]


def test_the_image_lock_pins_everything_the_demo_extra_needs(tmp_path: Path) -> None:
    """docker/requirements.lock (the Dockerfile installs it with --no-deps, then runs
    ``pip check``) must be complete and consistent for ``.[demo]``: resolving the extra
    with the lock as constraints succeeds and installs nothing that the lock does not pin,
    at the pinned version. (Comparing with a fresh resolution instead would fail on the
    next upstream release of any dependency, lock or no lock.)"""

    def pins(text: str) -> dict[str, str]:
        out = {}
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                out[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
        return out

    lock_file = ROOT / "docker" / "requirements.lock"
    lock = pins(lock_file.read_text())
    report = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
         "--quiet", "--disable-pip-version-check", "--report", str(report),
         "-c", str(lock_file), f"{ROOT}[demo]"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, f"the lock cannot satisfy .[demo]: {run.stderr[-2000:]}"
    chosen = {
        re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    chosen.pop("otel-assist", None)
    unpinned = sorted(name for name in chosen if name not in lock)
    assert not unpinned, f"regenerate docker/requirements.lock: not pinned {unpinned}"
    assert all(chosen[name] == lock[name] for name in chosen)
