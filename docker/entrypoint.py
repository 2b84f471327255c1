"""The image's entrypoint: build DATABASE_URL and REDIS_URL from separate variables, then
exec the command.

A password pasted into a URL breaks it as soon as it holds ``@``, ``:``, ``/``, ``%`` or
``#`` (compose cannot URL-encode), and the failure is a confusing connection error. Here
each part comes in its own variable and the password is percent-encoded, so any password
works. A DATABASE_URL / REDIS_URL that is already set is left alone.

  POSTGRES_HOST  POSTGRES_PORT (5432)  POSTGRES_DB  POSTGRES_USER  POSTGRES_PASSWORD
  REDIS_HOST     REDIS_PORT (6379)     REDIS_DB (0)                REDIS_PASSWORD

``python docker/entrypoint.py --print`` prints the two URLs with the passwords masked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from urllib.parse import quote


def _secret(env: MutableMapping[str, str], name: str) -> str:
    """``NAME``, else the contents of the file named by ``NAME_FILE`` (a compose secret)."""
    if env.get(name):
        return env[name]
    path = env.get(name + "_FILE")
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    return ""


def database_url(env: MutableMapping[str, str]) -> str | None:
    host = env.get("POSTGRES_HOST")
    if not host:
        return None
    user = quote(env.get("POSTGRES_USER", "postgres"), safe="")
    password = quote(_secret(env, "POSTGRES_PASSWORD"), safe="")
    auth = f"{user}:{password}" if password else user
    port = env.get("POSTGRES_PORT", "5432")
    db = quote(env.get("POSTGRES_DB", "postgres"), safe="")
    return f"postgresql+asyncpg://{auth}@{host}:{port}/{db}"


def redis_url(env: MutableMapping[str, str]) -> str | None:
    host = env.get("REDIS_HOST")
    if not host:
        return None
    password = quote(_secret(env, "REDIS_PASSWORD"), safe="")
    auth = f":{password}@" if password else ""
    return f"redis://{auth}{host}:{env.get('REDIS_PORT', '6379')}/{env.get('REDIS_DB', '0')}"


def fill(env: MutableMapping[str, str]) -> None:
    """Set DATABASE_URL / REDIS_URL in ``env`` from the parts, unless already set."""
    for name, build in (("DATABASE_URL", database_url), ("REDIS_URL", redis_url)):
        if not env.get(name):
            url = build(env)
            if url:
                env[name] = url


def main(argv: list[str]) -> None:
    fill(os.environ)
    if argv[:1] == ["--print"]:
        for name in ("DATABASE_URL", "REDIS_URL"):
            value = os.environ.get(name, "")
            print(f"{name}={value.split('@')[-1] if '@' in value else value}")
        return
    if not argv:
        sys.exit("usage: entrypoint.py COMMAND [ARG...]")
    os.execvp(argv[0], argv)  # noqa: S606 - exec the command as given, like "exec \"$@\""


if __name__ == "__main__":
    main(sys.argv[1:])
