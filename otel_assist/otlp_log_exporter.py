"""The stock OTLP/HTTP log exporter with our encoder in place of the protobuf one.

Why a subclass: everything but the encoding stays the stock exporter's own code:
endpoint, headers and compression resolution, the HTTP client with its retry, backoff and
``Retry-After`` handling (``_OTLPHTTPClient.export``), shutdown, and the SDK's exporter
self-metrics. The stock ``export()`` encodes inline (``encode_logs(batch)
.SerializeToString()``), so the method is restated here with that one line changed;
``tests/core/test_otlp_log_encoder.py`` pins the stock method's source so an upgrade of
the (exactly pinned) exporter package shows up as a failing test, not silent drift.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

from otel_assist._otel_compat import (
    LogRecordExportResult,
    OTLPLogExporter,
    ReadableLogRecord,
    RequestPayloadTooLargeError,
)
from otel_assist._otel_compat import is_request_too_large as _is_request_too_large
from otel_assist.otlp_log_encoder import OTLPLogEncoder

# The stock exporter's logger: its messages are kept out of the log pipeline by name.
_logger = logging.getLogger("opentelemetry.exporter.otlp.proto.http._log_exporter")


class EncodingOTLPLogExporter(OTLPLogExporter):
    """``OTLPLogExporter`` that serializes with :class:`OTLPLogEncoder` (several times
    cheaper, same message). Records the encoder has to leave out are not exported;
    :meth:`take_rejected` hands their count to the ``LogQueue``, which counts them as
    ``export_failed`` like records it could not convert."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._encoder = OTLPLogEncoder()
        self._rejected = 0

    def take_rejected(self) -> int:
        """Records left out since the last call (the export thread is the only caller)."""
        rejected, self._rejected = self._rejected, 0
        return rejected

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """The stock ``export()``, but for the encoding line (see the module docstring)."""
        if self._shutdown:
            _logger.warning("Exporter already shutdown, ignoring batch")
            return LogRecordExportResult.FAILURE

        with self._metrics.export_operation(len(batch)) as result:
            try:
                encoded = self._encoder.encode(batch)
            except Exception as error:  # the encoder catches per record; this is a bug
                _logger.error("Failed to encode logs batch: %s", error)
                result.error = error
                return LogRecordExportResult.FAILURE
            self._rejected += encoded.rejected
            serialized_data = encoded.data

            if _is_request_too_large(serialized_data, self._max_request_size):
                _logger.warning(
                    "Dropping logs batch: serialized size %d bytes exceeds max_request_size "
                    "%d bytes.",
                    len(serialized_data),
                    self._max_request_size,
                )
                result.error = RequestPayloadTooLargeError(
                    f"Serialized logs request size {len(serialized_data)} "
                    f"bytes exceeds max_request_size "
                    f"{self._max_request_size} bytes."
                )
                return LogRecordExportResult.FAILURE

            export_result = self._client.export(serialized_data)
            if not export_result.success:
                result.error = export_result.error
                result.error_attrs = (
                    {HTTP_RESPONSE_STATUS_CODE: export_result.status_code}
                    if export_result.status_code is not None
                    else None
                )
                return LogRecordExportResult.FAILURE
        return LogRecordExportResult.SUCCESS
