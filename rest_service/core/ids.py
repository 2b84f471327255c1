"""Which correlation ids rest_service accepts, and how any id goes into a URL path.

One rule for both ends: an id that is stored is one the admin can link to. The charset
is otel_assist's (letters, digits and ``. _ : -``, 1 to 128 characters: what the library
itself propagates), minus ids made only of dots, which a browser would resolve as ``.`` or
``..`` path segments even when percent-encoded (the URL standard decodes ``%2e``).
"""

from __future__ import annotations

from urllib.parse import quote

from otel_assist import correlation

CORRELATION_ID_RULE = "1 to 128 letters, digits and . _ : - (not only dots)"


def is_valid_correlation_id(value: object) -> bool:
    """True when ``value`` may be stored as a correlation_id and used in a link."""
    return isinstance(value, str) and correlation.is_valid(value)


def path_segment(value: object) -> str:
    """``value`` as one URL path segment: every reserved character percent-encoded,
    ``/`` included (``urllib.parse.quote``'s default and Jinja's ``urlencode`` keep it).
    A lone surrogate is encoded as its code point's bytes rather than raising."""
    return quote(str(value), safe="", errors="surrogatepass")
