"""Entry points for ``opentelemetry-instrument``: zero-code set-up equal to configure().

``opentelemetry-instrument uvicorn app:app`` loads, in order, one distro, one configurator
and then every installed instrumentor (``opentelemetry.instrumentation.auto_instrumentation``).
Ours:

* the configurator calls :func:`otel_assist.configure` (logs, metrics, baggage; no
  TracerProvider);
* the distro makes every FastAPI/Starlette app created afterwards instrument itself with
  :func:`otel_assist.web.asgi.instrument_app` (whether or not a stock ASGI instrumentor is
  installed), and loads every other installed instrumentor as the stock distro would,
  except the few whose job otel-assist does itself (:data:`REPLACED`): those would add a
  second, span-building layer to the same calls. Instrumentors that produce metrics (system
  metrics, SQLAlchemy pool metrics, ...) are loaded: their meters report through our
  MeterProvider, and any spans they start are non-recording (no TracerProvider).

**Hijack guard.** When another distro is installed beside otel-assist (opentelemetry-distro,
EDOT, ...), ``opentelemetry-instrument`` picks whichever entry point it meets first unless
``OTEL_PYTHON_DISTRO``/``OTEL_PYTHON_CONFIGURATOR`` name one. The other configurator installs
an SDK TracerProvider, which breaks the promise that no span is ever created, and it cannot be
undone once set. Our ``opentelemetry_post_instrument`` entry point (:func:`check_zero_code`)
runs under every distro, after the configurators and instrumentors, and checks that *ours*
ran; if neither variable was set and another one won, it prints a message naming the two
variables and ends the process with status 2 before the application starts (an exception
there would be a "Fatal Python error" traceback from ``site``). An operator who names another
distro explicitly is obeyed: otel-assist then stays out of the way.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from importlib.metadata import EntryPoint
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from otel_assist._otel_compat import BaseConfigurator

NAME = "otel_assist"
"""The entry-point name of our distro and configurator."""

REPLACED = frozenset({"fastapi", "starlette", "asgi", "redis", "httpx", "logging"})
"""Stock instrumentors whose work otel-assist does itself, so they are not loaded:
ASGI frameworks (our middleware), redis (``otel_assist.metrics.redis``: metrics without a
span per command), httpx (``otel_assist.web.http_client``: baggage without trace headers) and
logging (otel-assist owns the logging set-up)."""

HIJACK_MESSAGE = (
    "otel-assist: another OpenTelemetry distro/configurator ({other}) was loaded by "
    "opentelemetry-instrument instead of otel-assist's, so this process would get an SDK "
    "TracerProvider and none of otel-assist's set-up. Choose explicitly: "
    "OTEL_PYTHON_DISTRO=otel_assist OTEL_PYTHON_CONFIGURATOR=otel_assist"
)

_state = {"distro": False, "configurator": False}


class OtelAssistConfigurator(BaseConfigurator):
    """The ``opentelemetry_configurator`` entry point."""

    def _configure(self, **kwargs: Any) -> None:
        from otel_assist.telemetry import configure

        _state["configurator"] = True
        configure()


class OtelAssistDistro(BaseDistro):
    """The ``opentelemetry_distro`` entry point."""

    def _configure(self, **kwargs: Any) -> None:
        _state["distro"] = True
        patch_app_classes()

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: Any) -> None:
        if entry_point.name in REPLACED:
            return
        super().load_instrumentor(entry_point, **kwargs)


def explicit_choice() -> str | None:
    """The distro/configurator the operator named, when it is not ours (else None)."""
    for var in ("OTEL_PYTHON_DISTRO", "OTEL_PYTHON_CONFIGURATOR"):
        value = os.environ.get(var, "").strip()
        if value and value != NAME:
            return f"{var}={value}"
    return None


def hijack_message() -> str | None:
    """Why this zero-code start-up must stop, or None when it may go on.

    None when otel-assist's distro and configurator both ran, or when the operator explicitly
    chose another one (otel-assist then does nothing).
    """
    if _state["distro"] and _state["configurator"]:
        return None
    if explicit_choice() is not None:
        return None
    missing = [part for part, ran in _state.items() if not ran]
    return HIJACK_MESSAGE.format(other=" and ".join(f"the {m}" for m in missing))


def check_zero_code() -> None:
    """The ``opentelemetry_post_instrument`` entry point: stop a hijacked start-up."""
    message = hijack_message()
    if message is None:
        return
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    os._exit(2)


def patch_app_classes() -> None:
    """Make every Starlette and FastAPI app instrument itself when constructed.

    FastAPI's ``__init__`` does not call Starlette's, so both classes are patched. Nothing is
    imported for a process that has no Starlette installed (a worker, a cron service).
    """
    if importlib.util.find_spec("starlette") is None:
        return
    from starlette.applications import Starlette

    _patch_init(Starlette)
    if importlib.util.find_spec("fastapi") is None:
        return
    from fastapi import FastAPI

    _patch_init(FastAPI)


def _patch_init(cls: Any) -> None:
    if getattr(cls.__init__, "_otel_assist", False):
        return
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        from otel_assist.web.asgi import instrument_app

        instrument_app(self)

    __init__._otel_assist = True  # type: ignore[attr-defined]
    cls.__init__ = __init__
