"""Alembic, driven from code: ``rest-service migrate`` and the opt-in migrate-on-start.

No alembic.ini: the script location is this package's ``migrations`` directory and the URL
comes from the settings, so the same code migrates Postgres and the embedded SQLite file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from rest_service.core.db import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# Importing alembic.command logs one INFO "setup plugin alembic.autogenerate.*" line per
# built-in plugin: start-up noise that says nothing about this database. Quiet that logger
# (warnings stay) before the first import, which is therefore inside the functions below.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        # ConfigParser interpolation: a literal % in a password must be doubled.
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _run(connection: Connection, action: str, revision: str) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)


async def upgrade(db: Database, revision: str = "head") -> None:
    """Upgrade on the app's own engine (works inside a running event loop)."""
    async with db.engine.begin() as conn:
        await conn.run_sync(_run, "upgrade", revision)


async def downgrade(db: Database, revision: str) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(_run, "downgrade", revision)
