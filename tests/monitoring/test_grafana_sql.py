"""Every SQL query of every dashboard runs against the real Postgres and returns rows.

The database is built as in production: the grafana_ro role (monitoring/postgres) exists
first, then rest_service's real Alembic migration creates the tables (the event trigger
grants SELECT on the three dashboard tables as they are created), then rows arrive through
rest_service's real ingest API. Queries run as grafana_ro with Grafana's macros and
variables expanded the way Grafana expands them.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from rest_service.app import create_app
from rest_service.core.config import Settings
from tests import servers
from tests.monitoring.helpers import MONITORING
from tests.monitoring.test_grafana_files import GEN

TOKEN = "grafana-sql-test-token-" + "x" * 16
RO_PASSWORD = "grafana-ro-test-password"  # a throwaway loopback cluster
PSQL = str(servers.PG_BIN / "psql")
CID = "4bf92f3577b34da6a3ce929d0e0e4736"
NOW = datetime.now(UTC)


def sql_queries() -> list[tuple[str, str]]:
    return [
        (f"{d.title} / {p.title}", q.expr)
        for d in GEN.DASHBOARDS
        for p in d.panels()
        for q in p.queries
        if q.lang == "sql"
    ] + [
        (f"{d.title} / variable {v.name}", v.query)
        for d in GEN.DASHBOARDS
        for v in d.variables
        if v.lang == "sql"
    ]


def expand(sql: str, **values: str) -> str:
    """Grafana's PostgreSQL macros and variable formats, for a 1-day time range."""
    start, end = (NOW - timedelta(days=1)).isoformat(), (NOW + timedelta(minutes=5)).isoformat()
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 BETWEEN '{start}' AND '{end}'", sql)
    for name, value in values.items():
        sql = sql.replace(f"${{{name}:regex}}", re.escape(value) if value != ".*" else ".*")
        sql = sql.replace(f"${{{name}:sqlstring}}", "'" + value.replace("'", "''") + "'")
    assert "$" not in sql.replace("$'", ""), f"unexpanded variable in {sql}"
    return sql


@pytest.fixture(scope="module")
def database(postgres: servers.Postgres) -> str:
    url = postgres.create_database("grafana_sql")
    dsn = postgres.dsn.rsplit("/", 1)[0] + "/grafana_sql"
    out = subprocess.run(
        [
            PSQL,
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            f"ro_password={RO_PASSWORD}",
            "-f",
            str(MONITORING / "postgres" / "sql" / "grafana_readonly.sql"),
            dsn,
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return url


@pytest.fixture(scope="module")
def filled(database: str) -> str:
    asyncio.run(_fill(database))
    return database


async def _fill(database: str) -> None:
    settings = Settings(
        database_url=database,
        rest_service_token=TOKEN,
        migrate_on_start=True,
        retention_enabled=False,
        queue_names=["to_secretary", "to_telegram"],
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://rest",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        ) as client,
    ):
        await _workload(client)


async def _post(client: httpx.AsyncClient, path: str, body: Any) -> None:
    response = await client.post(f"/api/v1{path}", json=body)
    assert response.status_code in (200, 201), response.text


async def _workload(client: httpx.AsyncClient) -> None:
    events: list[dict[str, Any]] = []

    def run(job_type: str, outcome: str, minutes_ago: int, **extra: Any) -> None:
        run_id = uuid.uuid4().hex
        at = NOW - timedelta(minutes=minutes_ago)
        base = {
            "run_id": run_id,
            "job_id": f"{job_type}_1",
            "job_name": job_type.title(),
            "job_type": job_type,
            "user_id": 101,
            "correlation_id": uuid.uuid4().hex,
        }
        kinds = ["scheduled"] if outcome == "missed" else ["scheduled", "started"]
        for i, kind in enumerate([*kinds, outcome]):
            events.append(
                {
                    **base,
                    "event_id": f"{run_id}-{kind}",
                    "kind": kind,
                    "at": (at + timedelta(seconds=i)).isoformat(),
                    **(extra if kind == outcome else {}),
                }
            )

    for i in range(5):
        run("reminder", "completed", 50 - i, duration_ms=120)
        run(
            "memory_extraction",
            "failed",
            40 - i,
            error="TimeoutError: LLM API timed out",
            traceback="Traceback (most recent call last): ...",
        )
    run("update_reminders", "missed", 30)
    run("update_reminders", "timed_out", 20, error="exceeded max runtime 300s")
    await _post(client, "/job-executions/events", {"events": events})

    messages = []
    for i in range(6):
        cid = CID if i < 2 else uuid.uuid4().hex
        for queue, direction, mtype in (
            ("to_secretary", "push", "human"),
            ("to_secretary", "pop", "human"),
            ("to_telegram", "push", "response"),
        ):
            messages.append(
                {
                    "event_id": f"q-{i}-{queue}-{direction}",
                    "message_id": f"m-{i}-{queue}",
                    "queue_name": queue,
                    "direction": direction,
                    "message_type": mtype,
                    "source": "telegram",
                    "user_id": 101 + i % 2,
                    "correlation_id": cid,
                    "payload": {"text": f"hello {i} <b>&"},
                    "at": (NOW - timedelta(minutes=10 - i)).isoformat(),
                }
            )
    await _post(client, "/queue-stats/messages/batch", {"events": messages})

    for user, fact in ((101, "prefers tea"), (101, "lives in Lisbon"), (102, "allergic to nuts")):
        await _post(client, "/memories", {"user_id": user, "content": fact, "source": "chat"})


def run_as_grafana(database_url: str, sql: str) -> list[str]:
    dsn = re.sub(
        r"^postgresql\+asyncpg://[^@]+@", f"postgresql://grafana_ro:{RO_PASSWORD}@", database_url
    )
    out = subprocess.run(
        [PSQL, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql, dsn], capture_output=True, text=True
    )
    assert out.returncode == 0, f"{sql}\n{out.stderr}"
    return [line for line in out.stdout.splitlines() if line]


ALL = {"job_type": ".*", "queue": ".*", "correlation_id": "", "user_id": "101"}


@pytest.mark.parametrize(("where", "sql"), sql_queries(), ids=[w for w, _ in sql_queries()])
def test_sql_panel_returns_rows_as_grafana_ro(filled: str, where: str, sql: str) -> None:
    rows = run_as_grafana(filled, expand(sql, **ALL))
    print(where, rows[:3])
    assert rows, f"{where}: no rows"
    if "count(*) AS facts FROM" in sql and "GROUP BY" not in sql:
        assert rows == ["2"]


def test_filters_narrow_the_rows(filled: str) -> None:
    recent = next(sql for where, sql in sql_queries() if where.endswith("Recent executions"))
    failed = run_as_grafana(filled, expand(recent, **{**ALL, "job_type": "memory_extraction"}))
    assert len(failed) == 5
    assert all("|failed|" in row and "TimeoutError: LLM API timed out" in row for row in failed)
    messages = next(
        sql for where, sql in sql_queries() if where.endswith("Recent messages (Postgres)")
    )
    by_cid = run_as_grafana(filled, expand(messages, **{**ALL, "correlation_id": CID}))
    assert len(by_cid) == 6 and all(CID in row for row in by_cid)
    # A hostile textbox value stays a string literal.
    assert (
        run_as_grafana(filled, expand(messages, **{**ALL, "correlation_id": "x' OR '1'='1"})) == []
    )


def test_grafana_ro_reads_only_the_three_tables(filled: str) -> None:
    dsn_sql = "SELECT count(*) FROM job_hourly"
    with pytest.raises(AssertionError, match="permission denied"):
        run_as_grafana(filled, dsn_sql)
    with pytest.raises(AssertionError, match="read-only transaction"):
        run_as_grafana(filled, "DELETE FROM user_memories")


def _run_init_script(
    pg: servers.Postgres, database: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(MONITORING / "postgres" / "10-grafana-readonly.sh")],
        env={
            "PATH": f"{servers.PG_BIN}:/usr/bin:/bin",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(pg.port),
            "PGPASSWORD": pg.password,
            "POSTGRES_USER": pg.user,
            "POSTGRES_DB": database,
            **env,
        },
        capture_output=True,
        text=True,
    )


def test_init_script_as_the_postgres_image_runs_it(postgres: servers.Postgres, filled: str) -> None:
    """The docker-entrypoint-initdb.d hook: needs the password, idempotent, grants on create."""
    postgres.create_database("grafana_init")
    refused = _run_init_script(postgres, "grafana_init")
    assert refused.returncode != 0 and "GRAFANA_PG_PASSWORD" in refused.stderr
    for _ in range(2):
        out = _run_init_script(postgres, "grafana_init", GRAFANA_PG_PASSWORD=RO_PASSWORD)
        assert out.returncode == 0, out.stderr
    postgres.psql(
        "CREATE TABLE user_memories (user_id bigint, content text)", database="grafana_init"
    )
    postgres.psql("INSERT INTO user_memories VALUES (7, 'x')", database="grafana_init")
    url = filled.rsplit("/", 1)[0] + "/grafana_init"
    assert run_as_grafana(url, "SELECT user_id FROM user_memories") == ["7"]
