"""rest_service served in-process by uvicorn, on the demo's event loop.

The demo owns SIGINT/SIGTERM (to flush history before the API goes away), so uvicorn's
own signal capture is switched off and the server is stopped through ``should_exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from pydantic import SecretStr

from rest_service.app import create_app
from rest_service.core.config import Settings


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class RestServer:
    def __init__(
        self, host: str, port: int, token: str, database_url: str | None, redis_url: str
    ) -> None:
        self.host = host
        self.port = port
        self.settings = Settings(
            database_url=database_url,
            redis_url=redis_url,
            rest_service_token=SecretStr(token),
            migrate_on_start=True,
        )
        app = create_app(self.settings, telemetry=False)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self.server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    async def _serve(self) -> None:
        try:
            await self.server.serve()
        except SystemExit as exc:  # uvicorn exits the process when it cannot bind
            raise RuntimeError(f"uvicorn stopped (exit code {exc.code})") from None

    def check_port(self) -> None:
        """Fail early, with the fix in the message, when the port is taken."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((self.host, self.port))
            except OSError as exc:
                raise RuntimeError(
                    f"cannot listen on {self.host}:{self.port} ({exc.strerror}); "
                    "pass --port with a free port"
                ) from None

    async def start(self, timeout_s: float = 60.0) -> None:
        """Serve in a task and wait until it listens (raises if startup failed)."""
        self.check_port()
        self._task = asyncio.create_task(self._serve(), name="rest_service")
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self.server.started:
            if self._task.done():
                exc = self._task.exception()
                raise RuntimeError(
                    f"rest_service did not start on {self.host}:{self.port}"
                    + (f": {exc!r}" if exc else " (is the port in use?)")
                )
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("rest_service did not start within a minute")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._task is None:
            return
        if self._task.done():
            # Startup failed; the error was reported by start().
            if not self._task.cancelled():
                self._task.exception()
            return
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, SystemExit):
            await self._task
