"""Real servers for the test-suite, started on free loopback ports.

Every server here is the real program from its Debian package (installed by
``scripts/install-system-deps.sh``), run as a child process with its data in a temporary
directory. ``ManagedProcess`` can be stopped and started again on the same port and data,
which is what the fault-injection tests need (Postgres down for 10 s, Redis down, ...).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.polling import PollTimeout, poll

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return 200 <= resp.status < 300
    except OSError:
        return False


@dataclass
class ManagedProcess:
    """A server child process that can be stopped and restarted with the same arguments."""

    name: str
    argv: list[str]
    ready: Callable[[], bool]
    log_path: Path
    env: dict[str, str] | None = None
    user: str | None = None
    start_timeout: float = 60.0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ManagedProcess:
        if self.proc is not None and self.proc.poll() is None:
            return self
        log = self.log_path.open("ab")
        preexec = _drop_privileges(self.user) if self.user else None
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {})},
            preexec_fn=preexec,
            start_new_session=True,
        )
        log.close()
        try:
            poll(self._alive_and_ready, self.start_timeout, f"{self.name} to be ready")
        except PollTimeout as exc:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            self.stop()
            raise RuntimeError(
                f"{self.name} did not start: {exc}\n--- log tail ---\n{tail}"
            ) from exc
        return self

    def _alive_and_ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited early:\n{tail}")
        return self.ready()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL after ``timeout``)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def kill(self) -> None:
        """Crash-stop: SIGKILL, no chance to flush."""
        self.stop(sig=signal.SIGKILL)

    def restart(self) -> ManagedProcess:
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _drop_privileges(user: str) -> Callable[[], None]:
    entry = pwd.getpwnam(user)

    def preexec() -> None:
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return preexec


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class Postgres:
    process: ManagedProcess
    port: int
    user: str = "otel"
    password: str = "otel-test-password"
    database: str = "otel_assist"
    #: The cluster's own directory under /tmp when run as root (outside pytest's temp
    #: root, which pytest never cleans there): stop() removes it, a few hundred MB each.
    private_dir: Path | None = None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server and remove its private directory, if it has one."""
        self.process.stop(sig)
        if self.private_dir is not None:
            shutil.rmtree(self.private_dir, ignore_errors=True)

    @property
    def dsn(self) -> str:
        """asyncpg / libpq style DSN."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    @property
    def sqlalchemy_url(self) -> str:
        return (
            f"postgresql+asyncpg://{self.user}:{self.password}@127.0.0.1:{self.port}/"
            f"{self.database}"
        )

    def psql(self, sql: str, database: str | None = None) -> str:
        out = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
                f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/"
                f"{database or self.database}",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout

    def create_database(self, name: str) -> str:
        """Create a fresh database and return its SQLAlchemy URL."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', database="postgres")
        self.psql(f'CREATE DATABASE "{name}" OWNER "{self.user}"', database="postgres")
        return self.sqlalchemy_url.rsplit("/", 1)[0] + f"/{name}"


def start_postgres(workdir: Path) -> Postgres:
    """initdb a fresh cluster and start it on a free port.

    As root, the cluster lives in its own directory under /tmp owned by ``postgres``
    (pytest's temp root is private to root, and postgres refuses to run as root).
    """
    private_dir = None
    if os.geteuid() == 0:
        workdir = private_dir = Path(tempfile.mkdtemp(prefix="otel-assist-pg-"))
    datadir = workdir / "pgdata"
    sockdir = workdir / "pgsock"
    for d in (workdir, sockdir):
        d.mkdir(parents=True, exist_ok=True)
    run_as = "postgres" if os.geteuid() == 0 else None
    if run_as:
        entry = pwd.getpwnam(run_as)
        for d in (workdir, sockdir):
            os.chown(d, entry.pw_uid, entry.pw_gid)
    pg = Postgres(process=None, port=free_port(), private_dir=private_dir)  # type: ignore[arg-type]
    pwfile = workdir / "pwfile"
    pwfile.write_text(pg.password + "\n")
    if run_as:
        os.chown(pwfile, pwd.getpwnam(run_as).pw_uid, pwd.getpwnam(run_as).pw_gid)
    init = subprocess.run(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(datadir),
            "-U",
            pg.user,
            "--pwfile",
            str(pwfile),
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        capture_output=True,
        text=True,
        preexec_fn=_drop_privileges(run_as) if run_as else None,
    )
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed: {init.stderr or init.stdout}")
    argv = [
        str(PG_BIN / "postgres"),
        "-D",
        str(datadir),
        "-p",
        str(pg.port),
        "-h",
        "127.0.0.1",
        "-k",
        str(sockdir),
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
        "-c",
        "shared_buffers=256MB",
    ]
    log = workdir / "postgres.log"
    if run_as:
        log.touch()
        os.chown(log, pwd.getpwnam(run_as).pw_uid, pwd.getpwnam(run_as).pw_gid)
    pg.process = ManagedProcess(
        "postgres", argv, ready=lambda: _pg_ready(pg.port), log_path=log, user=run_as
    ).start()
    pg.psql(f'CREATE DATABASE "{pg.database}"', database="postgres")
    return pg


def _pg_ready(port: int) -> bool:
    return (
        subprocess.run(
            [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
            capture_output=True,
        ).returncode
        == 0
    )


# --------------------------------------------------------------------------- Redis


@dataclass
class Redis:
    process: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def start_redis(workdir: Path) -> Redis:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        shutil.which("redis-server") or "/usr/bin/redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--protected-mode",
        "no",
    ]
    proc = ManagedProcess(
        "redis", argv, ready=lambda: port_open(port), log_path=workdir / "redis.log"
    ).start()
    return Redis(process=proc, port=port)


# --------------------------------------------------------------------------- Prometheus


@dataclass
class Prometheus:
    process: ManagedProcess
    port: int
    config_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def remote_write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def reload(self) -> None:
        req = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        urllib.request.urlopen(req, timeout=5).close()


def start_prometheus(workdir: Path, config_yaml: str, port: int | None = None) -> Prometheus:
    """Start the Debian ``prometheus`` with the given config text (remote-write receiver on)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    config = workdir / "prometheus.yml"
    config.write_text(config_yaml)
    argv = [
        shutil.which("prometheus") or "/usr/bin/prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-remote-write-receiver",
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=1d",
    ]
    proc = ManagedProcess(
        "prometheus",
        argv,
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"),
        log_path=workdir / "prometheus.log",
    ).start()
    return Prometheus(process=proc, port=port, config_path=config)


# --------------------------------------------------------------------------- Alertmanager


@dataclass
class Alertmanager:
    process: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_alertmanager(
    workdir: Path, config_path: Path, env: dict[str, str] | None = None
) -> Alertmanager:
    """Start the Debian ``prometheus-alertmanager`` with a config file, clustering off."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager",
        f"--config.file={config_path}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    proc = ManagedProcess(
        "alertmanager",
        argv,
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"),
        log_path=workdir / "alertmanager.log",
        env=env,
    ).start()
    return Alertmanager(process=proc, port=port)


@contextlib.contextmanager
def stopped(process: ManagedProcess) -> Iterator[None]:
    """Stop a server for the duration of the block, start it again afterwards."""
    process.stop()
    try:
        yield
    finally:
        process.start()


# --------------------------------------------------------------------------- rest_service


@contextlib.contextmanager
def rest_service_process(
    env: dict[str, str], log_path: Path, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``rest-service serve`` (uvicorn, uvloop, httptools) as a child process on
    ``port`` (default: a free one) with ``env``, logging to ``log_path``; yields its base URL
    and the process (a test may kill it) once ``/ready`` answers."""
    import sys

    port = port or free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rest_service.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: http_ok(f"{url}/ready"), 60, "rest_service ready")
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=15)


@contextlib.contextmanager
def serve_rest_service(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """:func:`rest_service_process`, for tests that need only the URL."""
    with rest_service_process(env, log_path) as (url, _proc):
        yield url
