"""Which optional extra a feature needs, and the one-line message when it is missing.

The core install (``pip install otel-assist``) is the logging, correlation and metrics
distribution; FastAPI, Redis, APScheduler, rest_service's database stack and the demo's
embedded Redis come with extras. A command or module used without its extra must stop
with one line that names the extra and the command that installs it, never with a
``No module named ...`` traceback that leaves a newcomer guessing which package to add.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping

# Import names that prove an extra is installed (one per distribution the extra adds).
EXTRA_MODULES: Mapping[str, tuple[str, ...]] = {
    "fastapi": ("fastapi", "uvicorn"),
    "queues": ("redis", "apscheduler"),
    "rest": (
        "fastapi",
        "uvicorn",
        "sqlmodel",
        "sqlalchemy",
        "asyncpg",
        "aiosqlite",
        "alembic",
        "redis",
        "jinja2",
        "itsdangerous",
        "multipart",
    ),
    "demo": (
        "fastapi",
        "uvicorn",
        "sqlmodel",
        "alembic",
        "jinja2",
        "redis",
        "apscheduler",
        "fakeredis",
    ),
}


class MissingExtraError(ImportError):
    """A feature was used without the extra that installs its dependencies."""

    def __init__(self, what: str, extra: str, missing: tuple[str, ...]) -> None:
        self.what, self.extra, self.missing = what, extra, missing
        super().__init__(message(what, extra), name=missing[0] if missing else None)


def message(what: str, extra: str) -> str:
    """``rest-service needs the [rest] extra: pip install 'otel-assist[rest]'``."""
    return f"{what} needs the [{extra}] extra: pip install 'otel-assist[{extra}]'"


def missing_modules(extra: str) -> tuple[str, ...]:
    """The import names of ``extra`` that cannot be found (empty when it is installed)."""
    return tuple(m for m in EXTRA_MODULES[extra] if importlib.util.find_spec(m) is None)


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError` naming ``extra`` when any of its modules is absent.

    ``what`` is how the user reached the feature (a command or a module name)."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(what, extra, missing)


def exit_unless_installed(extra: str, what: str) -> None:
    """For command-line entry points: print the one line to stderr and exit with status 2."""
    try:
        require(extra, what)
    except MissingExtraError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
