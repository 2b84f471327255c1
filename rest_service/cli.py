"""``rest-service serve|migrate``: run the API under uvicorn or apply migrations."""

from __future__ import annotations

import argparse
import asyncio
import sys

from rest_service.admin.settings import AdminSettings
from rest_service.core.config import get_settings


def _migrate(action: str, revision: str) -> None:
    from rest_service.core import migrate
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rest-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API (uvicorn, uvloop, httptools)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="warning", help="uvicorn's own log level")
    mig = sub.add_parser("migrate", help="apply Alembic migrations (default: upgrade head)")
    mig.add_argument("revision", nargs="?", default="head")
    mig.add_argument("--downgrade", action="store_true", help="downgrade to REVISION")
    args = parser.parse_args(argv)

    if args.command == "migrate":
        _migrate("downgrade" if args.downgrade else "upgrade", args.revision)
        print(f"migrations: {'downgraded' if args.downgrade else 'upgraded'} to {args.revision}")
        return 0

    try:
        settings = get_settings()
        settings.check_startable()
        AdminSettings.from_env()  # a bad admin value fails here, not at the first page view
    except (RuntimeError, ValueError) as exc:
        print(f"rest-service: {exc}", file=sys.stderr)
        return 2
    import uvicorn

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
