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

The transport is the standard library's ``http.client`` on one kept-alive connection (the
export thread is its only user), not httpx: importing httpx (with httpcore, h11, and its
command line's click and rich when those are installed) cost every service about 5 MiB of
RSS (``bench/rss.py``) for one POST a second.
"""

from __future__ import annotations

import gzip
import http.client
import os
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
    caller; ``close`` from another thread makes a request in progress fail)."""

    def __init__(self, endpoint: str, timeout: float, certificate_file: str | None) -> None:
        url = urllib.parse.urlsplit(endpoint)
        self.https = url.scheme == "https"
        self.host = url.hostname or "localhost"
        self.port = url.port
        self.path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=certificate_file) if self.https else None
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self.https:
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self.context
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.connect()
        except Exception as error:
            error.otlp_phase = "ConnectError"  # type: ignore[attr-defined]  # as httpx said
            raise
        return connection

    def post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """(status, answer body). A kept-alive connection the endpoint closed while idle
        fails before anything is sent or answered: that one is retried once at once on a
        new connection (what httpx did too), not reported as an outage."""
        connection = self._connection
        if connection is not None:
            try:
                return self._exchange(connection, body, headers)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
        return self._exchange(self._connect(), body, headers)

    def _exchange(
        self, connection: http.client.HTTPConnection, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        self._connection = connection
        try:
            connection.request("POST", self.path, body=body, headers=dict(headers))
            response = connection.getresponse()
            content = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, content

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
