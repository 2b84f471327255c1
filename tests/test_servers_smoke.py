"""The test bootstrap's real servers start and answer."""

from __future__ import annotations

import socket

from tests import servers


def test_postgres_answers_sql(postgres: servers.Postgres) -> None:
    assert postgres.psql("SELECT 40 + 2").strip() == "42"


def test_redis_answers_ping(redis_server: servers.Redis) -> None:
    with socket.create_connection(("127.0.0.1", redis_server.port), timeout=2) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(16) == b"+PONG\r\n"


def test_prometheus_and_alertmanager_become_ready(tmp_path) -> None:
    prom = servers.start_prometheus(tmp_path / "prom", "global:\n  scrape_interval: 5s\n")
    try:
        assert servers.http_ok(f"{prom.url}/api/v1/status/buildinfo")
    finally:
        prom.process.stop()
    cfg = tmp_path / "am.yml"
    cfg.write_text("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
    am = servers.start_alertmanager(tmp_path / "am", cfg)
    try:
        assert servers.http_ok(f"{am.url}/api/v2/status")
    finally:
        am.process.stop()
