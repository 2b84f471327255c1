"""The compose stack's passwords, with the characters that break hand-made URLs and Grafana.

docker/entrypoint.py (the image's entrypoint) builds DATABASE_URL and REDIS_URL from
separate variables; here it runs for real, in front of `rest-service migrate` against the
real Postgres and a Redis client against a real redis-server, with passwords holding
``@ : / % # ? $`` and spaces. Grafana's provisioning expansion cannot run here (Grafana is
not installed), so its documented two-pass rule is reproduced and applied to the real
datasources file.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import redis
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from tests import servers

ROOT = Path(__file__).resolve().parent.parent
NASTY = "p@ss:w/rd%20#?x $HOME y\\'\""


def _entrypoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "compose_entrypoint", ROOT / "docker/entrypoint.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Passwords as an environment variable can hold: any text without NUL or lone surrogates
# (neither can be in a POSIX environment value encoded as UTF-8).
PASSWORDS = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1
) | st.sampled_from(["@", ":", "/", "%", "%25", "#", "?", "@:/", "a b", "ü€𝄞", "\r\n"])


@settings(max_examples=300, deadline=None)
@given(password=PASSWORDS, user=PASSWORDS)
def test_urls_round_trip_any_password(password: str, user: str) -> None:
    ep = _entrypoint()
    env = {
        "POSTGRES_HOST": "postgres",
        "POSTGRES_USER": user,
        "POSTGRES_PASSWORD": password,
        "POSTGRES_DB": "otel_assist",
        "REDIS_HOST": "redis",
        "REDIS_PASSWORD": password,
    }
    ep.fill(env)
    db = make_url(env["DATABASE_URL"])
    assert (db.username, db.password, db.host, db.port, db.database) == (
        user,
        password,
        "postgres",
        5432,
        "otel_assist",
    )
    parsed = redis.connection.parse_url(env["REDIS_URL"])
    assert parsed["password"] == password and parsed["host"] == "redis"


def test_a_url_that_is_already_set_is_left_alone() -> None:
    ep = _entrypoint()
    env = {"DATABASE_URL": "sqlite+aiosqlite:///x", "POSTGRES_HOST": "pg", "REDIS_URL": "r"}
    ep.fill(env)
    assert env["DATABASE_URL"] == "sqlite+aiosqlite:///x" and env["REDIS_URL"] == "r"


def test_password_file_is_read(tmp_path: Path) -> None:
    ep = _entrypoint()
    (tmp_path / "pw").write_text(NASTY + "\n")
    env = {"POSTGRES_HOST": "pg", "POSTGRES_PASSWORD_FILE": str(tmp_path / "pw")}
    ep.fill(env)
    assert make_url(env["DATABASE_URL"]).password == NASTY


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "POSTGRES_", "REDIS_", "DATABASE_URL"))
    }
    env.update(extra)
    return env


def test_rest_service_migrates_postgres_with_a_nasty_password(
    postgres: servers.Postgres,
) -> None:
    role = "nasty_pw_role"
    quoted = NASTY.replace("'", "''")
    postgres.psql("DROP DATABASE IF EXISTS nasty_pw WITH (FORCE)", database="postgres")
    postgres.psql(f"DROP ROLE IF EXISTS {role}", database="postgres")
    postgres.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{quoted}'", database="postgres")
    postgres.psql(f"CREATE DATABASE nasty_pw OWNER {role}", database="postgres")
    parts = {
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": str(postgres.port),
        "POSTGRES_USER": role,
        "POSTGRES_DB": "nasty_pw",
        "OTEL_SDK_DISABLED": "true",
    }
    cmd = [sys.executable, str(ROOT / "docker/entrypoint.py"), sys.executable]
    migrate = ["-m", "rest_service.cli", "migrate"]
    # the check can fail: a wrong password is refused by this server
    wrong = subprocess.run(
        cmd + migrate,
        env=_clean_env(**parts, POSTGRES_PASSWORD=NASTY + "x"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert wrong.returncode != 0
    run = subprocess.run(
        cmd + migrate,
        env=_clean_env(**parts, POSTGRES_PASSWORD=NASTY),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "upgraded to head" in run.stdout
    tables = postgres.psql("SELECT tablename FROM pg_tables ORDER BY 1", database="nasty_pw")
    assert "job_executions" in tables and "queue_message_logs" in tables
    assert NASTY not in run.stdout + run.stderr  # never echoed


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_redis_with_a_required_nasty_password(tmp_path: Path) -> None:
    port = servers.free_port()
    # the way the compose file starts it: the password from the environment, through sh
    proc = servers.ManagedProcess(
        "redis-pw",
        [
            "sh",
            "-c",
            'exec redis-server --port "$PORT" --bind 127.0.0.1 --save "" '
            '--appendonly no --requirepass "$REDIS_PASSWORD"',
        ],
        ready=lambda: servers.port_open(port),
        log_path=tmp_path / "redis.log",
        env={**os.environ, "PORT": str(port), "REDIS_PASSWORD": NASTY},
    ).start()
    try:
        probe = (
            "import os, redis\nr = redis.Redis.from_url(os.environ['REDIS_URL'])\nprint(r.ping())\n"
        )
        base = [sys.executable, str(ROOT / "docker/entrypoint.py"), sys.executable, "-c", probe]
        parts = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port)}
        ok = subprocess.run(
            base, env=_clean_env(**parts, REDIS_PASSWORD=NASTY), capture_output=True, text=True
        )
        assert ok.returncode == 0 and ok.stdout.strip() == "True", ok.stderr[-2000:]
        # without the password Redis refuses: the password is really required
        refused = subprocess.run(base, env=_clean_env(**parts), capture_output=True, text=True)
        assert refused.returncode != 0
        last = refused.stderr.strip().splitlines()[-1]
        assert re.search(r"NOAUTH|Authentication|AUTH", last), last
    finally:
        proc.stop()


# ----------------------------------------------------------------------------- Grafana


def grafana_expand(value: str, env: dict[str, str]) -> str:
    """Grafana's provisioning expansion as its docs describe it: first every ``${NAME}``,
    then every ``$NAME`` in the result (which is why ``${VAR}`` expands a value twice);
    ``$$`` is a literal ``$``; an unknown name becomes empty."""
    value = re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: env.get(m[1], ""), value)
    return re.sub(
        r"\$\$|\$([A-Za-z0-9_]+)", lambda m: "$" if m[0] == "$$" else env.get(m[1], ""), value
    )


def test_grafana_expansion_model_reproduces_the_documented_truncation() -> None:
    env = {"PW": "Pa$sw0rd"}
    assert grafana_expand("${PW}", env) == "Pa"  # the docs' own example
    assert grafana_expand("$PW", env) == "Pa$sw0rd"


def test_grafana_postgres_password_with_a_dollar_survives_provisioning() -> None:
    path = ROOT / "monitoring/grafana/provisioning/datasources/datasources.yml"
    data = yaml.safe_load(path.read_text())
    (pg,) = [d for d in data["datasources"] if d["uid"] == "postgres"]
    for password in ("Pa$sw0rd", "$x$$y${z}", "a$GRAFANA_PG_HOST", "p@ss:w/rd%$"):
        env = {"GRAFANA_PG_PASSWORD": password, "GRAFANA_PG_HOST": "postgres:5432"}
        assert grafana_expand(pg["secureJsonData"]["password"], env) == password
