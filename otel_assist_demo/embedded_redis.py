"""An embedded Redis-compatible server for the demo: fakeredis's TCP server.

Why fakeredis's ``TcpFakeServer`` and not fakeredis's in-process client: the demo must
exercise the same code a production service runs. With a TCP server every component
(queue producers and consumers, the Redis metrics wrapper, rest_service's live queue view)
uses the ordinary ``redis.asyncio`` client and speaks real RESP over a socket, blocking
BRPOP included; only the server differs. It needs nothing but Python (no redis-server
binary), which is what lets ``make demo`` run on a fresh machine. It is in-memory, single
process and not meant for production or benchmarks: set REDIS_URL for a real Redis.
"""

from __future__ import annotations

import socket
import threading

from fakeredis import TcpFakeServer


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """A fakeredis TCP server on a loopback port, served from a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or _free_port(host)
        TcpFakeServer.allow_reuse_address = True
        self._server = TcpFakeServer((self.host, self.port))
        # Handler threads must not keep the process alive after the demo ends.
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="embedded-redis", daemon=True
        )

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
