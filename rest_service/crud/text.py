"""Size caps for stored text: cut at a byte budget and say so in the stored value."""

from __future__ import annotations

TRUNCATION_MARKER = "…[truncated {n} bytes]"


def truncate_text(value: str, max_bytes: int) -> tuple[str, bool]:
    """Keep at most ``max_bytes`` of UTF-8 and append a marker naming how much was cut.

    Truncating (rather than rejecting with 413) keeps the history row: an operator would
    rather see the first 64 KiB of a runaway payload than lose the message entirely.
    """
    if len(value) * 4 <= max_bytes:  # cannot exceed: skip encoding the common small case
        return value, False
    raw = value.encode("utf-8", errors="surrogatepass")
    if len(raw) <= max_bytes:
        return value, False
    kept = raw[:max_bytes].decode("utf-8", errors="ignore")
    cut = len(raw) - len(kept.encode("utf-8", errors="surrogatepass"))
    return kept + TRUNCATION_MARKER.format(n=cut), True
