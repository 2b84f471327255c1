"""Wires the demo together, runs it, and shuts it down cleanly.

Embedded defaults, each replaced by the real thing when its variable is set:

* Redis: a fakeredis TCP server (``embedded_redis``) unless ``REDIS_URL``;
* history database: rest_service's SQLite file under ``.otel-assist/`` unless
  ``DATABASE_URL`` (Postgres);
* telemetry export: metrics on ``/metrics`` and log lines in ``.otel-assist/demo.log``;
  with ``OTEL_EXPORTER_OTLP_ENDPOINT`` logs and metrics also go to the Collector.

When ``OTEL_ASSIST_HISTORY_URL`` is set (the compose ``demo`` profile) rest_service runs
elsewhere: no in-process server is started, history and memory calls go there, and the
token comes from ``OTEL_ASSIST_HISTORY_TOKEN``.

Shutdown order matters for "Ctrl-C flushes history": stop producing, stop consumers and
the scheduler, flush the history shipper into rest_service while it still runs, then stop
rest_service, telemetry and Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import secrets
import signal
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

import httpx

import otel_assist
from otel_assist.extras import require
from otel_assist.history import HistorySettings, HistoryShipper, set_default_shipper

# Every demo module needs the [demo] extra: one line naming it, not "No module named".
require("demo", "otel_assist_demo")

from otel_assist.queues import redis_client  # noqa: E402
from otel_assist_demo import assistant, cron, summary, telegram_bot, telegram_sender  # noqa: E402
from otel_assist_demo.embedded_redis import EmbeddedRedis  # noqa: E402
from otel_assist_demo.rest_server import RestServer  # noqa: E402
from otel_assist_demo.synthetic import make_users  # noqa: E402
from otel_assist_demo.world import QUEUES, World  # noqa: E402

SERVICE_NAME = "otel-assist-demo"
log = otel_assist.get_logger("otel_assist_demo", component="runner")


@dataclass(frozen=True)
class DemoOptions:
    duration_s: float = 0.0  # 0: until Ctrl-C
    rate: float = 2.0
    seed: int | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 3
    state_dir: Path = Path(".otel-assist")
    log_file: Path | None = None
    refresh_s: float = 1.0


@dataclass
class Resolved:
    """What the demo ended up using, for the banner."""

    token: str
    token_generated: bool
    redis_url: str
    embedded_redis: EmbeddedRedis | None
    database_url: str | None
    otlp_endpoint: str | None
    log_path: Path
    seed: int
    #: rest_service's API base when it runs elsewhere (OTEL_ASSIST_HISTORY_URL, compose).
    external_api: str | None = None


def api_base(url: str) -> str:
    """rest_service's API base from either its root URL or the API URL itself."""
    from rest_service.api.main import API_PREFIX

    url = url.rstrip("/")
    return url if url.endswith(API_PREFIX) else url + API_PREFIX


def resolve(options: DemoOptions) -> Resolved:
    options.state_dir.mkdir(parents=True, exist_ok=True)
    external = os.environ.get("OTEL_ASSIST_HISTORY_URL", "").strip()
    token = os.environ.get("REST_SERVICE_TOKEN", "")
    if external:
        token = HistorySettings.from_env().token or token
        if not token:
            raise SystemExit(
                "otel-assist demo: OTEL_ASSIST_HISTORY_URL is set, so rest_service runs "
                "elsewhere; set OTEL_ASSIST_HISTORY_TOKEN (or REST_SERVICE_TOKEN) to its token"
            )
    generated = not token
    if generated:
        token = new_token()
    redis_url = os.environ.get("REDIS_URL", "")
    embedded = None
    if not redis_url:
        embedded = EmbeddedRedis().start()
        redis_url = embedded.url
    seed = options.seed if options.seed is not None else secrets.randbelow(1_000_000)
    return Resolved(
        token=token,
        token_generated=generated,
        redis_url=redis_url,
        embedded_redis=embedded,
        database_url=os.environ.get("DATABASE_URL") or None,
        otlp_endpoint=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
        log_path=options.log_file or options.state_dir / "demo.log",
        seed=seed,
        external_api=api_base(external) if external else None,
    )


def configure_telemetry(res: Resolved, log_stream: TextIO) -> otel_assist.Telemetry:
    """Logs to the log file (JSON) and, with a Collector, over OTLP; metrics on /metrics."""
    overrides: dict[str, Any] = {"log_format": "json"}
    if res.otlp_endpoint:
        if not os.environ.get("OTEL_METRICS_EXPORTER"):
            overrides["metrics_exporters"] = ("prometheus", "otlp")
        if not os.environ.get("OTEL_METRIC_EXPORT_INTERVAL"):
            overrides["metric_export_interval_ms"] = 10_000
    elif not os.environ.get("OTEL_LOGS_EXPORTER"):
        # No Collector to send to: keep the lines in the file instead of counting failures.
        overrides["logs_exporters"] = ("none",)
    name = os.environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME
    return otel_assist.configure(name, log_stream=log_stream, **overrides)


def banner(options: DemoOptions, res: Resolved, base: str) -> str:
    from rest_service.core.db import safe_url

    if res.token_generated:
        token = f"{res.token}   (generated for this run; set REST_SERVICE_TOKEN to choose one)"
    else:
        token = "the value of REST_SERVICE_TOKEN"  # noqa: S105 - a hint, not a secret
    redis = (
        f"embedded fakeredis TCP server at {res.redis_url} (set REDIS_URL for a real Redis)"
        if res.embedded_redis
        else f"{safe_url(res.redis_url)} (REDIS_URL)"
    )
    if res.external_api:
        db = f"whatever rest_service at {res.external_api} uses (OTEL_ASSIST_HISTORY_URL)"
    elif res.database_url:
        db = f"{safe_url(res.database_url)} (DATABASE_URL)"
    else:
        db = f"SQLite {options.state_dir / 'rest_service.sqlite3'} (set DATABASE_URL for Postgres)"
    export = (
        f"OTLP to {res.otlp_endpoint} and {res.log_path}"
        if res.otlp_endpoint
        else f"log lines in {res.log_path} (JSON); set OTEL_EXPORTER_OTLP_ENDPOINT for a Collector"
    )
    length = f"{options.duration_s:g} s" if options.duration_s else "until Ctrl-C"
    return "\n".join(
        [
            "otel-assist demo: a simulated assistant (telegram bot -> to_secretary -> assistant"
            " -> to_telegram -> sender, plus cron)",
            "",
            f"  Admin pages  {base}/admin      log in with the token below",
            f"  API docs     {base}/docs",
            f"  Metrics      {base}/metrics",
            f"  Token        {token}",
            f"  Redis        {redis}",
            f"  History DB   {db}",
            f"  Telemetry    {export}",
            f"  Workload     {options.rate:g} messages/s, seed {res.seed}, {length}",
            "",
        ]
    )


async def run(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    out = cast(TextIO, _Terminal(out))
    res = resolve(options)
    res.log_path.parent.mkdir(parents=True, exist_ok=True)
    log_stream = res.log_path.open("a", encoding="utf-8", buffering=1)
    telemetry = configure_telemetry(res, log_stream)
    server = (
        None
        if res.external_api
        else RestServer(options.host, options.port, res.token, res.database_url, res.redis_url)
    )
    _quiet_chatty_loggers()
    base = server.base_url if server is not None else (res.external_api or "").rsplit("/api/", 1)[0]
    api_url = res.external_api or api_base(base)
    shipper = HistoryShipper(
        dataclasses.replace(
            HistorySettings.from_env(),
            url=api_url,
            token=res.token,
            flush_interval_s=0.5,
            spool_dir=str(options.state_dir / "history-spool"),
        )
    )
    set_default_shipper(shipper)
    redis = redis_client.connect(res.redis_url)
    api = httpx.AsyncClient(
        base_url=api_url,
        headers={"Authorization": f"Bearer {res.token}"},
        timeout=10.0,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, _first_signal(loop, stop, sig))

    display = summary.Display(out)
    collector = summary.Collector(redis, QUEUES, options.duration_s or None)
    tasks: list[asyncio.Task[Any]] = []
    consumers: list[Any] = []
    scheduler = None
    tracker = None
    code = 0
    try:
        if server is not None:
            await server.start()
        log.info("demo started", event_type="info", seed=res.seed, rate=options.rate)
        out.write(banner(options, res, base) + "\n")
        out.flush()
        world = World(random.Random(res.seed), options.rate, redis, api, [])
        world.users = make_users(world.rng)
        bot = asyncio.create_task(telegram_bot.run(world), name="telegram_bot")
        brain = assistant.Assistant(world)
        consumers = [*brain.consumers(options.workers), telegram_sender.consumer(world)]
        tasks = [bot, *(asyncio.create_task(c.run(), name=c.queue_name) for c in consumers)]
        scheduler, tracker = cron.start(world, shipper)
        deadline = time.monotonic() + options.duration_s if options.duration_s else None
        while not stop.is_set():
            display.show(await collector.snapshot())
            wait = options.refresh_s
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
    except Exception as exc:
        log.error("demo failed", event_type="error", error=repr(exc), exc_info=True)
        out.write(f"otel-assist demo: {exc}\n")
        out.flush()
        code = 1
    finally:
        display.release()
        out.write("\nstopping: producers, consumers and scheduler first...\n")
        out.flush()
        failed: list[str] = []
        step = _Steps(out, failed)
        if "world" in locals():
            world.stopping.set()
        for consumer in consumers:
            consumer.stop()
        if scheduler is not None and tracker is not None:
            # On the loop's thread: AsyncIOScheduler is not thread-safe.
            await step("scheduler", _inline(cron.stop, scheduler, tracker))
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                task.cancel()
        reachable = server is None or server.server.started
        flushed = await asyncio.to_thread(shipper.flush, 15.0) if reachable else False
        if reachable:
            with contextlib.suppress(Exception):
                display.show(await collector.snapshot(), final=True)
        if not reachable:
            out.write("rest_service never started: no history to flush\n")
        elif flushed:
            out.write("history flushed into rest_service: all events stored\n")
        else:
            out.write(
                f"history: {shipper.pending()} events not delivered; they stay in "
                f"{options.state_dir / 'history-spool'} and are sent on the next run\n"
            )
        if server is not None:
            await step("rest_service", server.stop())
        await step("API client", api.aclose())
        await step("Redis client", redis.aclose())
        await step("history shipper", asyncio.to_thread(shipper.shutdown, 5.0))
        set_default_shipper(None)
        await step("telemetry", asyncio.to_thread(_shutdown_telemetry, telemetry))
        log_stream.close()
        if res.embedded_redis is not None:
            await step("embedded Redis", asyncio.to_thread(res.embedded_redis.stop))
        out.write(f"demo stopped; its log lines are in {res.log_path}\n")
        out.flush()
        if failed:
            code = code or 1
    return code


class _Terminal:
    """The demo's own output, surviving a reader that went away.

    ``make demo | tee demo.log`` then Ctrl-C: the signal reaches tee too, tee exits
    first, and the demo's next write ("stopping: ...") raised BrokenPipeError, which cut
    the shutdown short before history was flushed. Output is a courtesy; shutdown is
    not: once the reader is gone, writes are dropped and every shutdown step still runs.
    The stream's descriptor is pointed at /dev/null, so the interpreter's own flush at
    exit does not print "Exception ignored ... BrokenPipeError" either.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except (OSError, ValueError):
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self._reader_gone()

    def isatty(self) -> bool:
        try:
            return not self.gone and self.stream.isatty()
        except (OSError, ValueError):
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def _reader_gone(self) -> None:
        self.gone = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)


class _Steps:
    """Runs shutdown steps so that one failing step is reported and the rest still run."""

    def __init__(self, out: TextIO, failed: list[str]) -> None:
        self.out = out
        self.failed = failed

    async def __call__(self, what: str, awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception as exc:
            self.failed.append(what)
            self.out.write(f"shutdown: stopping {what} failed: {exc!r}\n")
            log.error("shutdown step failed", event_type="error", step=what, error=repr(exc))


async def _inline(func: Any, *args: Any) -> None:
    func(*args)


def _shutdown_telemetry(telemetry: otel_assist.Telemetry) -> None:
    telemetry.force_flush(5.0)
    telemetry.shutdown(5.0)


def _quiet_chatty_loggers() -> None:
    """One INFO line per outgoing HTTP call (httpx), per mapper set-up (SQLAlchemy ORM) and
    per request without route or correlation_id (uvicorn's access log) would outnumber the
    demo's own lines; requests are counted in the HTTP metrics instead. Called after the
    uvicorn Config exists, because creating it re-routes (and resets) library loggers."""
    for name in ("httpx", "sqlalchemy.orm", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _first_signal(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, sig: int) -> Any:
    def handler() -> None:
        stop.set()
        # A second Ctrl-C during shutdown falls back to the default: stop at once.
        loop.remove_signal_handler(sig)

    return handler


def new_token() -> str:
    """A random admin/API token for one run. Never starts with ``-``, which a command line
    would read as an option (``rest-service ... -abc``, ``curl -H ... -abc``)."""
    while True:
        token = secrets.token_urlsafe(18)
        if not token.startswith("-"):
            return token
