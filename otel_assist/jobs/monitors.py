"""Cron monitors for tracked APScheduler jobs: declare each job's schedule to rest_service.

The job tracker (``otel_assist.jobs``) notices missed runs only while its own process is
alive. rest_service's monitors notice them from outside: each tracked job is registered
as a monitor with the schedule of its trigger, and rest_service's sweeper marks a run
``missed`` when no history row for it arrives in time - also when the scheduler process
was killed, hangs or was never deployed (docs/monitors.md).

``monitor_spec(job_id, trigger)`` turns an APScheduler 3.x trigger into a monitor spec
(``None`` for what a monitor cannot express: one-off dates, combined triggers, seconds-
level or year/week-restricted cron fields, day and weekday both restricted (APScheduler
needs both to match, cron either), intervals under a minute). ``MonitorRegistrar``
sends the specs to ``POST /monitors/batch`` under ``OTEL_ASSIST_HISTORY_URL`` from one
daemon thread: batched (start-up registrations are collected for a moment), retried with
backoff while rest_service is down, and idempotent (the server upserts by slug). Callers
only append to a dict under a lock: nothing here blocks a scheduler thread.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
import time
from datetime import timedelta
from datetime import timezone as dt_timezone
from typing import Any

import httpx

from otel_assist.history.shipper import HistorySettings, HistoryShipper, default_shipper
from otel_assist.logs.configure import get_logger
from otel_assist.retry_backoff import exponential_delay

_log = get_logger("otel_assist.monitors")

SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
#: What the minute, hour and day fields may hold to mean the same in cron (not "last",
#: "1st mon" ...); the month field may also use names.
NUMERIC_FIELD_RE = re.compile(r"^[0-9*,/-]{1,64}$")
MONTH_FIELD_RE = re.compile(r"^[A-Za-z0-9*,/-]{1,64}$")
MONITOR_PATH = "/monitors/batch"
#: Start-up registrations arriving within this window go out in one request.
BATCH_WINDOW_S = 0.5


def slug_for(job_id: str) -> str:
    """The job id itself when it is URL-safe (so history rows of the job and of the
    monitor share ``job_id``), else a readable, unique stand-in."""
    if SLUG_RE.match(job_id):
        return job_id
    digest = hashlib.sha256(job_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    cleaned = re.sub(r"[^A-Za-z0-9._:@-]+", "-", job_id).strip("-._:@")[:100] or "job"
    return f"{cleaned}-{digest}"


def _zone_name(tz: Any) -> str | None:
    """The IANA name of a zoneinfo / pytz zone; a fixed UTC offset of zero is "UTC"."""
    name = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if name:
        return str(name)
    if isinstance(tz, dt_timezone) and tz.utcoffset(None) == timedelta(0):
        return "UTC"
    return None


def _cron_dow(text: str) -> str | None:
    """APScheduler numbers weekdays mon=0..sun=6, cron sun=0..sat=6: shift numbers, keep
    names. A step means different days in the two, so it is refused."""
    out = []
    for part in text.split(","):
        if "/" in part:
            return None
        ends = []
        for end in part.split("-"):
            if end.isascii() and end.isdigit() and int(end) <= 6:
                ends.append(str((int(end) + 1) % 7))
            elif end == "*" or (end.isascii() and end.isalpha() and len(end) == 3):
                ends.append(end.lower())
            else:
                return None
        out.append("-".join(ends))
    return ",".join(out)


def _cron_expression(trigger: Any) -> str | None:
    fields = {f.name: str(f) for f in getattr(trigger, "fields", [])}
    if not fields:
        return None
    if fields.get("year", "*") != "*" or fields.get("week", "*") != "*":
        return None
    second = fields.get("second", "0")
    if not second.isdigit():  # fires more than once a minute (or an odd expression)
        return None
    if fields.get("day", "*") != "*" and fields.get("day_of_week", "*") != "*":
        return None  # APScheduler wants both to match, cron either: not expressible
    dow = _cron_dow(fields.get("day_of_week", "*"))
    parts = [fields.get(name, "*") for name in ("minute", "hour", "day", "month")]
    if dow is None or not all(NUMERIC_FIELD_RE.match(p) for p in parts[:3]):
        return None
    if not MONTH_FIELD_RE.match(parts[3]):
        return None
    return " ".join([*parts, dow])


def monitor_spec(
    job_id: str,
    trigger: Any,
    *,
    job_type: str = "cron_job",
    grace_s: float = 60.0,
    max_runtime_s: float | None = None,
    owner_service: str | None = None,
) -> dict[str, Any] | None:
    """The monitor for a job with ``trigger`` (APScheduler 3.x), or None if there is none."""
    kind = type(trigger).__name__
    spec: dict[str, Any] = {"slug": slug_for(str(job_id)), "job_type": job_type[:128] or "job"}
    jitter = getattr(trigger, "jitter", None) or 0
    if kind == "CronTrigger":
        cron = _cron_expression(trigger)
        zone = _zone_name(getattr(trigger, "timezone", None))
        if cron is None or zone is None:
            return None
        spec.update(cron=cron, timezone=zone)
    elif kind == "IntervalTrigger":
        interval = getattr(trigger, "interval", None)
        if not isinstance(interval, timedelta) or interval.total_seconds() < 60:
            return None
        spec["interval_seconds"] = math.ceil(interval.total_seconds())
    else:
        return None
    spec["grace_seconds"] = min(7 * 86400, max(0, math.ceil(grace_s + jitter)))
    if max_runtime_s:
        spec["max_runtime_seconds"] = min(7 * 86400, max(1, math.ceil(max_runtime_s)))
    if owner_service:
        spec["owner_service"] = owner_service[:128]
    return spec


class MonitorRegistrar:
    """Sends monitor specs to rest_service in batches from a daemon thread (see above)."""

    def __init__(self, settings: HistorySettings, *, transport: Any = None) -> None:
        self.settings = settings
        self.enabled = settings.enabled
        self._pending: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._transport = transport
        #: Counts by outcome (registered, retried, rejected) for tests and the CLI.
        self.stats: dict[str, int] = {}
        self._idle = threading.Event()
        self._idle.set()

    def add(self, job_id: str, trigger: Any, **options: Any) -> None:
        """Queue a job's monitor (the latest spec of a slug wins). Never raises."""
        if not self.enabled:
            return
        try:
            spec = monitor_spec(job_id, trigger, **options)
            if spec is None:
                return
            with self._lock:
                self._pending[spec["slug"]] = spec
                self._idle.clear()
                if self._pid != os.getpid() or self._thread is None:
                    self._pid = os.getpid()
                    self._thread = threading.Thread(
                        target=self._run, name="otel-assist-monitors", daemon=True
                    )
                    self._thread.start()
            self._wake.set()
        except Exception:  # noqa: S110 - registration must never fail the scheduler
            pass

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Block until everything queued was accepted or rejected (tests, shutdown)."""
        return self._idle.wait(timeout_s)

    def _count(self, outcome: str, n: int) -> None:
        self.stats[outcome] = self.stats.get(outcome, 0) + n

    def _run(self) -> None:
        failures = 0
        with httpx.Client(timeout=self.settings.timeout_s, transport=self._transport) as client:
            while True:
                self._wake.wait()
                time.sleep(BATCH_WINDOW_S)
                self._wake.clear()
                with self._lock:
                    batch = list(self._pending.values())
                    self._pending.clear()
                try:
                    self._send(client, batch)
                    failures = 0
                except (httpx.HTTPError, _Retry) as exc:
                    with self._lock:  # back in, unless a newer spec of the slug arrived
                        for spec in batch:
                            self._pending.setdefault(spec["slug"], spec)
                    failures += 1
                    self._count("retried", len(batch))
                    _log.warning("monitor registration failed; will retry", error=repr(exc))
                    time.sleep(
                        exponential_delay(
                            failures, self.settings.retry_initial_s, self.settings.retry_max_s
                        )
                    )
                    self._wake.set()
                    continue
                with self._lock:
                    if not self._pending:
                        self._idle.set()

    def _send(self, client: httpx.Client, batch: list[dict[str, Any]]) -> None:
        if not batch:
            return
        headers = {"content-type": "application/json"}
        if self.settings.token:
            headers["authorization"] = f"Bearer {self.settings.token}"
        resp = client.post(
            self.settings.url + MONITOR_PATH, json={"monitors": batch}, headers=headers
        )
        if resp.status_code < 300:
            self._count("registered", len(batch))
            return
        if resp.status_code in (413, 422):
            if len(batch) > 1:  # find the spec the server refuses; register the rest
                half = len(batch) // 2
                self._send(client, batch[:half])
                self._send(client, batch[half:])
                return
            self._count("rejected", 1)
            _log.error(
                "monitor rejected by rest_service",
                monitor=batch[0]["slug"],
                status=resp.status_code,
                detail=resp.text[:500],
            )
            return
        raise _Retry(f"HTTP {resp.status_code}")


class _Retry(Exception):
    """rest_service did not take the batch; try again later."""


_registrars: dict[int, MonitorRegistrar] = {}


def registrar_for(shipper: HistoryShipper | None = None) -> MonitorRegistrar:
    """The registrar that talks to the same rest_service (URL, token) as ``shipper``."""
    settings = (shipper if shipper is not None else default_shipper()).settings
    key = id(settings)
    registrar = _registrars.get(key)
    if registrar is None or registrar.settings is not settings:
        registrar = _registrars[key] = MonitorRegistrar(settings)
    return registrar


def register_job(registrar: MonitorRegistrar, job: Any, meta: Any, grace_s: float) -> None:
    """The job tracker's hook: queue ``job``'s monitor (``meta`` is its JobMeta)."""
    registrar.add(
        str(job.id),
        job.trigger,
        job_type=meta.job_type,
        grace_s=grace_s,
        max_runtime_s=meta.max_runtime,
        owner_service=os.environ.get("OTEL_SERVICE_NAME") or None,
    )
