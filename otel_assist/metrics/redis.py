"""Redis client metrics: ``db.client.operation.duration`` by command and outcome.

opentelemetry-instrumentation-redis creates a span per command and records no metric, so
with tracing off it costs time and gives nothing. This is a lean wrapper instead: the
client's ``execute_command`` (and its pipelines' ``execute``) are timed with two
``perf_counter`` calls and one pre-aggregated histogram record
(:mod:`otel_assist.metrics.preaggregation`) whose attributes are folded once per command
name.
Names follow the semantic conventions (``db.system.name=redis``,
``db.operation.name=LPUSH``, ``error.type`` only on failure); bench/queue_overhead.py
measures the cost together with the rest of the queue path.

Blocking commands (BRPOP) are timed including the time they block: for them the histogram
shows how long consumers waited for work, not server latency.
"""

from __future__ import annotations

import inspect
import time
from typing import Any, TypeVar

from otel_assist.metrics import instruments as metrics
from otel_assist.metrics.preaggregation import BoundHistogram

ClientT = TypeVar("ClientT")
_FLAG = "_otel_assist_metrics"
_NAME = "db.client.operation.duration"


class _Recorder:
    """Records into the catalog's histogram (built once per process, so nothing here is
    refreshed when configure() runs); successful commands record through a handle bound
    once per command name (at most 256 names kept)."""

    def __init__(self) -> None:
        self._instrument = metrics.catalog()[_NAME]
        self._histogram = self._instrument.raw
        #: Command name -> its bound success series; read directly by the wrappers.
        self.ok_bound: dict[Any, BoundHistogram] = {}

    def ok(self, command: Any, seconds: float) -> None:
        bound = self.ok_bound.get(command)
        if bound is None:
            bound = self._histogram.bind(self._fold(command, None))
            if len(self.ok_bound) < 256:
                self.ok_bound[command] = bound
        bound.record(seconds)

    def error(self, command: Any, seconds: float, exc: BaseException) -> None:
        self._histogram.record(seconds, self._fold(command, type(exc).__name__))

    def _fold(self, command: Any, error_type: str | None) -> dict[str, Any]:
        name = command.decode() if isinstance(command, bytes) else str(command)
        return self._instrument.attributes(
            **{
                "db.system.name": "redis",
                "db.operation.name": name.upper(),
                "error.type": error_type,
            }
        )


_recorder = _Recorder()


def _command(args: tuple[Any, ...]) -> Any:
    return args[0] if args else "UNKNOWN"


def instrument(client: ClientT) -> ClientT:
    """Time every command of one client (``redis.Redis`` or ``redis.asyncio.Redis``).

    Returns the same client. Instrumenting twice is a no-op. Errors are re-raised unchanged.
    """
    if getattr(client, _FLAG, False):
        return client
    original = client.execute_command  # type: ignore[attr-defined]
    perf = time.perf_counter
    rec = _recorder
    ok_get = rec.ok_bound.get
    if inspect.iscoroutinefunction(original):

        async def execute_command(*args: Any, **options: Any) -> Any:
            start = perf()
            try:
                result = await original(*args, **options)
            except BaseException as exc:
                rec.error(_command(args), perf() - start, exc)
                raise
            # rec.ok() with its lookup inlined (every command comes through here).
            bound = ok_get(args[0]) if args else None
            if bound is not None:
                bound.record(perf() - start)
            else:
                rec.ok(_command(args), perf() - start)
            return result

        client.execute_command = execute_command  # type: ignore[attr-defined]
    else:

        def execute_command_sync(*args: Any, **options: Any) -> Any:
            start = perf()
            try:
                result = original(*args, **options)
            except BaseException as exc:
                rec.error(_command(args), perf() - start, exc)
                raise
            bound = ok_get(args[0]) if args else None
            if bound is not None:
                bound.record(perf() - start)
            else:
                rec.ok(_command(args), perf() - start)
            return result

        client.execute_command = execute_command_sync  # type: ignore[attr-defined]
    _wrap_pipeline(client)
    setattr(client, _FLAG, True)
    return client


def _wrap_pipeline(client: Any) -> None:
    """Each pipeline ``execute`` is recorded once as operation PIPELINE (or MULTI)."""
    make = client.pipeline
    perf = time.perf_counter
    rec = _recorder

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make(*args, **kwargs)
        name = "MULTI" if getattr(pipe, "is_transaction", False) is True else "PIPELINE"
        execute = pipe.execute
        if inspect.iscoroutinefunction(execute):

            async def run(*a: Any, **kw: Any) -> Any:
                start = perf()
                try:
                    result = await execute(*a, **kw)
                except BaseException as exc:
                    rec.error(name, perf() - start, exc)
                    raise
                rec.ok(name, perf() - start)
                return result

            pipe.execute = run
        else:

            def run_sync(*a: Any, **kw: Any) -> Any:
                start = perf()
                try:
                    result = execute(*a, **kw)
                except BaseException as exc:
                    rec.error(name, perf() - start, exc)
                    raise
                rec.ok(name, perf() - start)
                return result

            pipe.execute = run_sync
        return pipe

    client.pipeline = pipeline


_CLASS_FLAG = "_otel_assist_instruments_instances"


def _client_classes() -> list[type[Any]]:
    try:
        import redis
        import redis.asyncio as aredis
    except ImportError:  # pragma: no cover - redis is in the queues extra
        return []
    return [redis.Redis, aredis.Redis]


def instrument_classes() -> None:
    """Make every ``redis.Redis``/``redis.asyncio.Redis`` instance instrument itself.

    Patches ``__init__`` (once): each new client gets :func:`instrument` applied after its
    own initialisation, so ``from_url()``, subclasses and clients built by third-party
    libraries are all covered, and ``instrument()``'s own flag keeps a client that is also
    passed to ``instrument()`` by hand from being wrapped twice.
    """
    for cls in _client_classes():
        if getattr(cls.__init__, _CLASS_FLAG, False):
            continue
        cls.__init__ = _instrumenting_init(cls.__init__)


def _instrumenting_init(original: Any) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        instrument(self)

    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(__init__, _CLASS_FLAG, True)
    return __init__


def uninstrument_classes() -> None:
    """Undo :func:`instrument_classes` for clients created afterwards."""
    for cls in _client_classes():
        if getattr(cls.__init__, _CLASS_FLAG, False):
            cls.__init__ = cls.__init__.__wrapped__
