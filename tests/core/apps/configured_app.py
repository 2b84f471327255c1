"""The same app, instrumented with the one-call API."""

from __future__ import annotations

import otel_assist
from otel_assist.web.asgi import instrument_app

otel_assist.configure("core_test_app")

from tests.core.apps.plain_app import app  # noqa: E402 - configure() first, as documented

instrument_app(app)
