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
"""

from __future__ import annotations

import gzip
import os
import threading
import urllib.parse
from collections.abc import Mapping, Sequence

import httpx

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
        verify: str | bool = certificate_file or _env("CERTIFICATE") or True
        self._client = httpx.Client(timeout=timeout, verify=verify)
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
            response = self._client.post(self.endpoint, content=body, headers=self._headers)
        # refused, reset, timed out; RuntimeError: the client was closed by shutdown()
        except (httpx.HTTPError, OSError, RuntimeError) as error:
            self.last_failure_retryable = not self._shutdown.is_set()
            self.last_failure = type(error).__name__
            return LogRecordExportResult.FAILURE
        if 200 <= response.status_code < 300:
            self._count_partial_success(response.content)
            return LogRecordExportResult.SUCCESS
        self.last_failure_retryable = response.status_code in RETRYABLE_STATUSES
        self.last_failure = f"HTTP {response.status_code}"
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
        self._client.close()
