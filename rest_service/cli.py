"""rest-service: the history store, API and admin pages of otel-assist.

Commands: serve (run the API under uvicorn) and migrate (apply the Alembic migrations).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from otel_assist.extras import exit_unless_installed

_EPILOG = (
    "Configuration comes from the environment: REST_SERVICE_TOKEN (or the READ/INGEST tokens), "
    "DATABASE_URL (default: SQLite file .otel-assist/rest_service.sqlite3), REDIS_URL; "
    "see docs/configuration.md."
)


def _migrate(action: str, revision: str) -> None:
    from rest_service.core import migrate
    from rest_service.core.config import get_settings
    from rest_service.core.db import Database

    async def go() -> None:
        db = Database(get_settings())
        try:
            if action == "upgrade":
                await migrate.upgrade(db, revision)
            else:
                await migrate.downgrade(db, revision)
        finally:
            await db.dispose()

    asyncio.run(go())


def build_parser() -> argparse.ArgumentParser:
    """The command line; every option says what it does and shows its default."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="rest-service", description=__doc__, epilog=_EPILOG, formatter_class=fmt
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{serve,migrate}")
    serve = sub.add_parser(
        "serve",
        help="run the API, the admin pages and /metrics under uvicorn (uvloop, httptools)",
        description="Run the API (/api/v1, docs at /docs), the admin pages (/admin) and "
        "/metrics under uvicorn with uvloop and httptools. Refuses to start without a token "
        "unless REST_SERVICE_DEV_MODE=1.",
        epilog=_EPILOG,
        formatter_class=fmt,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    serve.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes (Postgres for more than 1)"
    )
    serve.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's own log level (the service's log level is OTEL_ASSIST_LOG_LEVEL)",
    )
    mig = sub.add_parser(
        "migrate",
        help="apply the Alembic migrations to DATABASE_URL",
        description="Apply the Alembic migrations to DATABASE_URL (upgrade to REVISION, or "
        "downgrade to it with --downgrade).",
        epilog=_EPILOG,
        formatter_class=fmt,
    )
    mig.add_argument("revision", nargs="?", default="head", help="target revision")
    mig.add_argument("--downgrade", action="store_true", help="downgrade to REVISION")
    return parser


def main(argv: list[str] | None = None) -> int:
    exit_unless_installed("rest", "rest-service")
    from rest_service.core.config import get_settings

    args = build_parser().parse_args(argv)

    if args.command == "migrate":
        _migrate("downgrade" if args.downgrade else "upgrade", args.revision)
        print(f"migrations: {'downgraded' if args.downgrade else 'upgraded'} to {args.revision}")
        return 0

    try:
        settings = get_settings()
        settings.check_startable()
    except (RuntimeError, ValueError) as exc:
        print(f"rest-service: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    shown = f"[{args.host}]" if ":" in args.host else args.host
    base = f"http://{shown}:{args.port}"
    print(
        f"rest-service: listening on {base} (admin {base}/admin, API docs {base}/docs)",
        flush=True,
    )
    uvicorn.run(
        "rest_service.app:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        log_level=args.log_level,
        access_log=False,  # otel_assist's middleware writes the access log as JSON
        # uvicorn believes X-Forwarded-For from loopback unless told otherwise; only the
        # operator's TRUSTED_PROXIES may set the client address (default: nobody)
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
