"""Session-wide real servers. Each starts lazily, the first time a test asks for it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from tests import servers

# The gate (`make test`, CI) draws the same examples on every run: a property test that
# fails there fails again on the developer's machine, and a landing never depends on the
# seed. HYPOTHESIS_PROFILE=explore draws fresh ones (what to run while hunting new bugs);
# whatever it finds is pinned with @example before the fix.
hypothesis_settings.register_profile("gate", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("explore", derandomize=False, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gate"))

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def server_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def postgres(server_root: Path) -> Iterator[servers.Postgres]:
    pg = servers.start_postgres(server_root / "postgres")
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def redis_server(server_root: Path) -> Iterator[servers.Redis]:
    r = servers.start_redis(server_root / "redis")
    yield r
    r.process.stop()
