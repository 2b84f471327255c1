"""Session-wide real servers. Each starts lazily, the first time a test asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import servers

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def server_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def postgres(server_root: Path) -> Iterator[servers.Postgres]:
    pg = servers.start_postgres(server_root / "postgres")
    yield pg
    pg.process.stop()


@pytest.fixture(scope="session")
def redis_server(server_root: Path) -> Iterator[servers.Redis]:
    r = servers.start_redis(server_root / "redis")
    yield r
    r.process.stop()
