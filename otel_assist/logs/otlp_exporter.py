"""OTLP/HTTP log exporter on the SDK's public ``LogRecordExporter`` interface.

Why our own and not a subclass of the stock ``OTLPLogExporter``: to encode with
:class:`~otel_assist.logs.otlp_encoder.OTLPLogEncoder` (several times cheaper than
``encode_logs().SerializeToString()``), a subclass had to restate the stock ``export()``
and reach into its private fields, which change between releases and forced an exact pin.
This class owns the few things an OTLP/HTTP log exporter does:

* **one attempt per** :meth:`export`. Retrying belongs to the caller,
  :class:`otel_assist.logs.export_queue.LogQueue`, which keeps the batch and retries with backoff
  for as long as its bounded queue has room (a Collector restart costs nothing). The result
  of the attempt is left in :attr:`last_failure_retryable` / :attr:`last_failure` for it:
  retryable are no answer (refused, reset, timed out) and the statuses the OTLP/HTTP
  specification lists as retryable (429, 502, 503, 504) plus 408 and 500; any other status
  means the endpoint refused the batch for good;
* the standard environment variables, resolved once: ``OTEL_EXPORTER_OTLP_LOGS_HEADERS``
  (else ``OTEL_EXPORTER_OTLP_HEADERS``), ``..._COMPRESSION`` (``gzip`` or ``none``) and
  ``..._CERTIFICATE`` (a CA bundle for https endpoints), each in the same logs-then-generic
  order as the SDK;
* partial success: records the endpoint reports as rejected in its
  ``ExportLogsServiceResponse`` are added to :meth:`take_rejected`, so the queue counts them.

It writes no log lines itself (it runs inside the log pipeline); ``LogQueue`` reports export
health once per outage.

The transport is HTTP/1.1 written on one kept-alive socket (the export thread is its only
user; ``_Transport`` says why not ``http.client``), not httpx: importing httpx (with
httpcore, h11, and its command line's click and rich when those are installed) cost every
service about 5 MiB of RSS (``bench/rss.py``) for one POST a second.
"""

from __future__ import annotations

import gzip
import http.client
import os
import re
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Mapping, Sequence

from otel_assist._otel_compat import LogRecordExporter, LogRecordExportResult, ReadableLogRecord
from otel_assist.logs.otlp_encoder import OTLPLogEncoder
from otel_assist.settings import _Reader

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses worth retrying until the endpoint recovers."""

_CONTENT_TYPE = "application/x-protobuf"


def _env(name: str) -> str | None:
    """``OTEL_EXPORTER_OTLP_LOGS_<name>``, else ``OTEL_EXPORTER_OTLP_<name>``."""
    reader = _Reader(os.environ)
    for var in (f"OTEL_EXPORTER_OTLP_LOGS_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        value = reader.text(var)  # declared in otel_assist.settings
        if value:
            return value
    return None


def parse_headers(raw: str | None) -> dict[str, str]:
    """The OTLP exporter header format: ``key1=value1,key2=value2``, URL-encoded values.

    A malformed pair is skipped rather than failing start-up: export headers are usually an
    API key, and a service that cannot start is worse than one whose export is refused (the
    refusal is then reported by ``LogQueue`` with the status).
    """
    headers: dict[str, str] = {}
    for pair in (raw or "").split(","):
        key, sep, value = pair.partition("=")
        key = urllib.parse.unquote(key).strip().lower()
        if sep and key:
            headers[key] = urllib.parse.unquote(value).strip()
    return headers


class OTLPHttpLogExporter(LogRecordExporter):
    """Sends log batches to ``endpoint`` (the full ``.../v1/logs`` URL) over OTLP/HTTP."""

    def __init__(
        self,
        endpoint: str,
        timeout: float = 10.0,
        *,
        headers: Mapping[str, str] | None = None,
        compression: str | None = None,
        certificate_file: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        chosen = (compression or _env("COMPRESSION") or "none").lower()
        self.gzip = chosen == "gzip"
        self._headers = {
            **parse_headers(_env("HEADERS")),
            **{k.lower(): v for k, v in (headers or {}).items()},
            "content-type": _CONTENT_TYPE,
        }
        if self.gzip:
            self._headers["content-encoding"] = "gzip"
        self._transport = _Transport(endpoint, timeout, certificate_file or _env("CERTIFICATE"))
        self._encoder = OTLPLogEncoder()
        self._rejected = 0
        self._shutdown = threading.Event()
        self.last_failure_retryable = False
        self.last_failure: str | None = None

    @property
    def encoder(self) -> OTLPLogEncoder:
        """The encoder of this exporter's batches: ``LogQueue`` writes its records' wire
        form with it (:meth:`OTLPLogEncoder.event_record`), in the export thread."""
        return self._encoder

    def take_rejected(self) -> int:
        """Records left out since the last call: by the encoder or by the endpoint."""
        rejected, self._rejected = self._rejected, 0
        return rejected

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.last_failure_retryable = False
        self.last_failure = None
        if self._shutdown.is_set():
            self.last_failure = "exporter shut down"
            return LogRecordExportResult.FAILURE
        encoded = self._encoder.encode(batch)
        self._rejected += encoded.rejected
        body = gzip.compress(encoded.data, compresslevel=1) if self.gzip else encoded.data
        try:
            status, content = self._transport.post(body, self._headers)
        # refused, reset, timed out, a malformed answer; or the connection closed under
        # it by shutdown()
        except Exception as error:
            self.last_failure_retryable = not self._shutdown.is_set()
            self.last_failure = getattr(error, "otlp_phase", None) or type(error).__name__
            return LogRecordExportResult.FAILURE
        if 200 <= status < 300:
            self._count_partial_success(content)
            return LogRecordExportResult.SUCCESS
        self.last_failure_retryable = status in RETRYABLE_STATUSES
        self.last_failure = f"HTTP {status}"
        return LogRecordExportResult.FAILURE

    def _count_partial_success(self, content: bytes) -> None:
        if not content:
            return  # the Collector's usual answer: an empty message, nothing rejected
        # Imported here, not at the top: protobuf and the generated OTLP modules cost every
        # service about 10 MiB of RSS (bench/rss.py), and only a partial success needs them.
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceResponse,
        )

        try:
            answer = ExportLogsServiceResponse.FromString(content)
        except Exception:  # a proxy's HTML, say: the batch was accepted, nothing to count
            return
        self._rejected += answer.partial_success.rejected_log_records

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here (the queue holds the records)."""
        return True

    def shutdown(self) -> None:
        """Close the connection pool; an export in progress fails as not retryable."""
        self._shutdown.set()
        self._transport.close()


class _Transport:
    """One HTTP/1.1 connection to the endpoint, kept alive between batches and opened
    again after any failure. Not for concurrent use (the export thread is the only
    caller; ``close`` from another thread makes a request in progress fail).

    The exchange is written on the socket directly: the request (head and body) in one
    ``sendall``, the answer read into one buffer and parsed for what an OTLP client
    needs (status, ``Content-Length`` or chunked body, ``Connection: close``). Why not
    ``http.client``: its per-request header validation, ``makefile`` and
    ``email``-parser header parsing cost about 280 us of CPU per POST on the
    development VM (400 us against 125 us for the same POST to the Collector), half a
    microsecond per record at the default batch size, in the export thread of the
    service (``bench/log_overhead.py``)."""

    def __init__(self, endpoint: str, timeout: float, certificate_file: str | None) -> None:
        url = urllib.parse.urlsplit(endpoint)
        self.https = url.scheme == "https"
        self.host = url.hostname or "localhost"
        self.port = url.port or (443 if self.https else 80)
        self.path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.https else 80
        self.host_header = host if self.port == default_port else f"{host}:{self.port}"
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=certificate_file) if self.https else None
        self._connection: socket.socket | None = None

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
            else:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except Exception as error:
            error.otlp_phase = "ConnectError"  # type: ignore[attr-defined]  # as httpx said
            raise
        return sock

    def post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """(status, answer body). A kept-alive connection the endpoint closed while idle
        fails before anything is answered: that one is retried once at once on a new
        connection (what httpx did too), not reported as an outage."""
        request = self._head(len(body), headers) + body
        connection = self._connection
        if connection is not None:
            try:
                return self._exchange(connection, request)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
        return self._exchange(self._connect(), request)

    def _head(self, length: int, headers: Mapping[str, str]) -> bytes:
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {self.host_header}"]
        for name, value in headers.items():
            if _UNSAFE.search(name) or _UNSAFE.search(value):  # as http.client refuses
                raise ValueError(f"invalid header {name!r}")
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _exchange(self, connection: socket.socket, request: bytes) -> tuple[int, bytes]:
        self._connection = connection
        try:
            connection.sendall(request)
            status, content, keep = _read_response(connection)
        except BaseException:
            self.close()
            raise
        if not keep:
            self.close()
        return status, content

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


_UNSAFE = re.compile(r"[\r\n\0]")
_MAX_HEAD = 65_536
#: An OTLP answer is an ExportLogsServiceResponse or a Status: bytes to a few KiB. A larger
#: body (a misconfigured endpoint, a proxy's error page streamed forever) is refused
#: instead of being held in the service's memory.
_MAX_BODY = 1 << 20


def _too_large(size: int) -> None:
    if size > _MAX_BODY:
        raise http.client.HTTPException(f"answer body over {_MAX_BODY} bytes")
    if size < 0:
        raise http.client.HTTPException("negative length in the answer")


def _read_response(sock: socket.socket) -> tuple[int, bytes, bool]:
    """(status, body, whether the connection can be used again) of one HTTP/1.x answer.
    Interim 1xx answers are skipped. No byte at all before the connection closes raises
    ``RemoteDisconnected`` (the endpoint closed a kept-alive connection)."""
    buffer = b""
    while True:
        end = buffer.find(b"\r\n\r\n")
        while end < 0:
            if len(buffer) > _MAX_HEAD:
                raise http.client.LineTooLong("response head")
            chunk = sock.recv(65_536)
            if not chunk:
                if buffer:
                    raise http.client.IncompleteRead(buffer)
                raise http.client.RemoteDisconnected("closed before answering")
            buffer += chunk
            end = buffer.find(b"\r\n\r\n")
        head, buffer = buffer[:end].decode("latin-1"), buffer[end + 4 :]
        status_line, _, header_text = head.partition("\r\n")
        version, _, rest = status_line.partition(" ")
        if not version.startswith("HTTP/1."):
            raise http.client.BadStatusLine(status_line)
        status = int(rest[:3])
        if 100 <= status < 200:
            continue  # 100 Continue, 103 Early Hints: the answer follows
        break
    fields: dict[str, str] = {}
    for line in header_text.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    connection = fields.get("connection", "").lower()
    keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
    if status in (204, 304):
        return status, b"", keep
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body, buffer = _read_chunked(sock, buffer)
        return status, body, keep
    length = fields.get("content-length")
    if length is None:  # the body ends with the connection
        parts = [buffer]
        received = len(buffer)
        while chunk := sock.recv(65_536):
            parts.append(chunk)
            received += len(chunk)
            _too_large(received)
        return status, b"".join(parts), False
    size = int(length)
    _too_large(size)
    while len(buffer) < size:
        chunk = sock.recv(max(65_536, size - len(buffer)))
        if not chunk:
            raise http.client.IncompleteRead(buffer, size - len(buffer))
        buffer += chunk
    return status, buffer[:size], keep


def _read_chunked(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
    """A chunked body (and what follows it): chunks until the zero-size one, trailers
    skipped."""
    parts: list[bytes] = []

    def fill(needed: int) -> None:
        nonlocal buffer
        _too_large(needed)
        while len(buffer) < needed:
            chunk = sock.recv(65_536)
            if not chunk:
                raise http.client.IncompleteRead(buffer)
            buffer += chunk

    while True:
        end = buffer.find(b"\r\n")
        while end < 0:
            fill(len(buffer) + 1)
            end = buffer.find(b"\r\n")
        size = int(buffer[:end].split(b";", 1)[0], 16)
        _too_large(size + sum(len(p) for p in parts))
        buffer = buffer[end + 2 :]
        if size == 0:
            while (end := buffer.find(b"\r\n")) != 0:  # trailers, then the empty line
                if end < 0:
                    fill(len(buffer) + 1)
                else:
                    buffer = buffer[end + 2 :]
            return b"".join(parts), buffer[2:]
        fill(size + 2)
        parts.append(buffer[:size])
        buffer = buffer[size + 2 :]
