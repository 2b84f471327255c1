"""Entry points for ``opentelemetry-instrument``: zero-code set-up equal to configure().

``opentelemetry-instrument uvicorn app:app`` loads, in order, the distro, the configurator
and every installed instrumentor. Ours:

* the configurator calls :func:`otel_assist.configure` (logs, metrics, baggage; no
  TracerProvider);
* the distro replaces the stock FastAPI/Starlette/ASGI instrumentors with
  :func:`otel_assist.asgi.instrument_app` applied to every FastAPI/Starlette app created
  afterwards, and skips the other stock instrumentors: with tracing off they would only
  build no-op spans on every call. Redis and httpx get our own lean hooks instead.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _BaseConfigurator

_ASGI_FRAMEWORKS = frozenset({"fastapi", "starlette", "asgi"})


class OtelAssistConfigurator(_BaseConfigurator):
    """The ``opentelemetry_configurator`` entry point."""

    def _configure(self, **kwargs: Any) -> None:
        from otel_assist.telemetry import configure

        configure()


class OtelAssistDistro(BaseDistro):
    """The ``opentelemetry_distro`` entry point."""

    def _configure(self, **kwargs: Any) -> None:
        return None

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: Any) -> None:
        if entry_point.name in _ASGI_FRAMEWORKS:
            patch_app_classes()


def patch_app_classes() -> None:
    """Make every Starlette and FastAPI app instrument itself when constructed.

    FastAPI's ``__init__`` does not call Starlette's, so both classes are patched.
    """
    try:
        from starlette.applications import Starlette
    except ImportError:  # pragma: no cover - nothing to instrument
        return
    _patch_init(Starlette)
    try:
        from fastapi import FastAPI
    except ImportError:  # pragma: no cover - Starlette alone
        return
    _patch_init(FastAPI)


def _patch_init(cls: Any) -> None:
    if getattr(cls.__init__, "_otel_assist", False):
        return
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        from otel_assist.asgi import instrument_app

        instrument_app(self)

    __init__._otel_assist = True  # type: ignore[attr-defined]
    cls.__init__ = __init__
