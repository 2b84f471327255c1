"""Small things a newcomer notices in the demo: repeated facts, awkward tokens."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from otel_assist_demo.runner import new_token
from tests import servers


def test_generated_tokens_never_start_with_a_dash() -> None:
    # token_urlsafe's first character is "-" one time in 64: 2000 draws would show it.
    tokens = [new_token() for _ in range(2000)]
    assert not [t for t in tokens if t.startswith("-")]
    assert len(set(tokens)) == len(tokens) and all(len(t) == 24 for t in tokens)


def test_a_fact_said_twice_is_stored_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "REDIS_URL"))}
    env.pop("DATABASE_URL", None)
    env.pop("REST_SERVICE_TOKEN", None)
    env["OTEL_LOGS_EXPORTER"] = "none"
    port = servers.free_port()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "otel_assist_demo.cli",
            "demo",
            "--duration",
            "15",
            "--rate",
            "12",
            "--seed",
            "11",
            "--port",
            str(port),
        ],
        cwd=tmp_path,  # the embedded SQLite file is ./.otel-assist/rest_service.sqlite3
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    database = tmp_path / ".otel-assist" / "rest_service.sqlite3"
    assert database.exists(), sorted(p.name for p in tmp_path.rglob("*"))
    with sqlite3.connect(database) as db:
        (stored,) = db.execute("SELECT count(*) FROM user_memories").fetchone()
        repeated = db.execute(
            "SELECT user_id, content, count(*) FROM user_memories"
            " GROUP BY user_id, lower(content) HAVING count(*) > 1"
        ).fetchall()
    # ~50 facts said over 8 users x 10 facts: many said twice, each stored once
    assert stored >= 10, stored
    assert repeated == [], repeated
