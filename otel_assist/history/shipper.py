"""The history shipper: job and queue events to rest_service, in batches, losing nothing.

Callers (queue producers/consumers on the event loop, job wrappers on executor threads)
only ``submit()`` a dict or a deferred event (a tuple the shipper thread turns into the
dict, see :mod:`otel_assist.history.payload`): one bounded ``deque.append``, no I/O, no
lock, never an exception. Everything else happens on one daemon thread per process:

* batching by size (``batch_size``, the thread is woken when a buffer reaches it) and by
  time (``flush_interval``);
* POST to rest_service's batch endpoints (``/job-executions/events`` and
  ``/queue-stats/messages/batch`` under ``OTEL_ASSIST_HISTORY_URL``) with the bearer token;
* every event carries an ``event_id`` (queue: ``<message id>:push|pop``; job:
  ``<run id>:<kind>``) and rest_service ignores ids it already stored, so a retry after a
  timeout whose request did land never duplicates a row;
* while rest_service is down: retry with exponential backoff and jitter; with a spool
  directory the waiting events move to append-only JSONL segments on disk (fsynced, capped
  at ``spool_max_bytes``; beyond the cap new events are dropped and counted), and segments
  left by a previous process are replayed on start, oldest first;
* every event is checked against the wire schema (``otel_assist.history.wire``, the same
  definition rest_service validates with) before it is sent: a bad optional field is
  repaired or dropped (counted ``sanitized``, logged with the field's name), an event whose
  required field is bad, or that rest_service refuses (a 400/413/422 batch is split in
  halves until the single event is found), is set aside in the dead-letter file (counted
  ``dead_letter``, logged with the field's name). One bad event never costs its batch;
* with a spool directory, events are written ahead to the spool by a second thread every
  ``spool_write_interval`` (200 ms) and sent from there, so a SIGKILLed process loses at
  most the events submitted in its last 200 ms (plus one write); the sender's network
  waits never delay that write;
* ``shutdown()`` (also at exit) sends what it can and spools the rest.

A dedicated thread with a synchronous httpx client, rather than a task on the host's
event loop, keeps the shipper usable from sync services (a BackgroundScheduler) and means
a slow rest_service can never stall the service's loop.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import httpx
import orjson

from otel_assist.history import wire
from otel_assist.history.dead_letter import DeadLetter
from otel_assist.history.payload import PAYLOAD_RAW_KEY, Deferred, PayloadCapture
from otel_assist.history.spool import Spool
from otel_assist.logs.configure import get_logger
from otel_assist.metrics import instruments as metrics
from otel_assist.retry_backoff import exponential_delay
from otel_assist.settings import HistorySettings

Kind = Literal["job", "queue"]
KINDS: tuple[Kind, ...] = ("job", "queue")
YIELD_EVERY = 16
#: A batch's body stays below this (rest_service's MAX_BODY_BYTES defaults to 8 MiB).
BATCH_MAX_BYTES = 4 * 1024 * 1024
#: A warning about the same repaired field is logged at most this often.
FIX_LOG_INTERVAL_S = 60.0
_log = get_logger("otel_assist.history")


class _FixLog:
    """Rate-limits the warning about a repaired field: once per (kind, field) per minute,
    with how many events had it meanwhile, so a job with an out-of-range user_id on every
    run does not flood the logs."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], float] = {}
        self.pending: dict[tuple[str, str], int] = {}

    def note(self, kind: str, field: str, reason: str) -> None:
        key = (kind, field[:64])
        self.pending[key] = self.pending.get(key, 0) + 1
        now = time.monotonic()
        if now - self.last.get(key, -FIX_LOG_INTERVAL_S) < FIX_LOG_INTERVAL_S:
            return
        if len(self.last) > 1000:
            self.last.clear()
        self.last[key] = now
        _log.warning(
            "history event field repaired before sending",
            kind=kind,
            field=key[1],
            reason=reason[:200],
            events=self.pending.pop(key),
        )


# --------------------------------------------------------------------------- shipper


class _Unavailable(Exception):
    """rest_service did not take the batch; retry later."""


#: This process's pid, kept by a fork hook: ``os.getpid()`` is a system call, and
#: submit() runs for every queue message (twice per round trip).
_pid = os.getpid()


def _note_fork() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_note_fork)


#: What a buffer holds: an event dict, a deferred event, or (put back after a failed
#: send) an already serialised line.
_Pending = dict[str, Any] | Deferred | bytes


class HistoryShipper:
    """Background sender of history events. See the module docstring."""

    def __init__(
        self,
        settings: HistorySettings | None = None,
        *,
        transport: Any = None,
        start: bool = True,
    ) -> None:
        """``transport``: an httpx transport (tests, benchmarks); ``start=False`` leaves the
        sender thread off, so events only accumulate (benchmarks measuring the enqueue)."""
        self.settings = settings or HistorySettings.from_env()
        self.enabled = self.settings.enabled
        self._buffers: dict[str, deque[_Pending]] = {k: deque() for k in KINDS}
        self._max = self.settings.buffer_size
        self._batch = self.settings.batch_size
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._transport = transport
        self._failures = 0
        self._next_attempt = 0.0
        self._shutdown_deadline = 0.0
        self._in_flight = 0
        self._spool: Spool | None = None
        self._capture = PayloadCapture(
            self.settings.capture_payload, self.settings.payload_max_bytes
        )
        self._dead = DeadLetter(
            self.settings.dead_letter_path,
            self.settings.dead_letter_max_bytes,
            self._capture.masker,
        )
        self._fixes = _FixLog()
        self._writer: threading.Thread | None = None
        #: Totals by (kind, outcome), also exported as history_events_total (for tests/CLI).
        self.stats: dict[tuple[str, str], int] = {}
        if self.enabled:
            if self.settings.spool_dir:
                self._spool = Spool(
                    self.settings.spool_dir,
                    self.settings.spool_max_bytes,
                    self.settings.spool_segment_bytes,
                )
            if start:
                self._start()

    # ---------------------------------------------------------------- caller side

    def submit(self, kind: Kind, event: dict[str, Any] | Deferred) -> None:
        """Queue one event (a dict, or a deferred event built on the shipper thread).
        Constant time, no I/O, never raises."""
        if not self.enabled:
            return
        try:
            buf = self._buffers[kind]
            if len(buf) >= self._max:
                self._count(kind, "dropped", 1)
                return
            buf.append(event)
            if len(buf) == self._batch:
                self._wake.set()
            if self._pid != _pid:  # a forked child: its own buffers and sender thread
                self._after_fork()
        except Exception:  # noqa: S110 - telemetry must never fail the caller
            pass

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Send everything buffered (and spooled) now; True when nothing is left."""
        if not self.enabled:
            return True
        deadline = time.monotonic() + timeout_s
        self._next_attempt = 0.0
        while time.monotonic() < deadline:
            if self.pending() == 0:
                return True
            self._idle.clear()
            self._wake.set()
            self._idle.wait(min(0.2, max(0.0, deadline - time.monotonic())))
        return self.pending() == 0

    def clear(self) -> int:
        """Forget everything buffered in memory (not counted); returns how many events."""
        n = 0
        for buf in self._buffers.values():
            n += len(buf)
            buf.clear()
        return n

    def pending(self) -> int:
        """Events not yet accepted by rest_service (memory + spool)."""
        spooled = sum(self._spool.counts.values()) if self._spool else 0
        return sum(len(b) for b in self._buffers.values()) + spooled + self._in_flight

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Send what can be sent within ``timeout_s``; spool (or count as dropped) the rest."""
        if not self.enabled or self._thread is None:
            return
        self._shutdown_deadline = time.monotonic() + timeout_s
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s + 2.0)
        self._thread = None

    # ---------------------------------------------------------------- sender thread

    @property
    def write_ahead(self) -> bool:
        """Events go to the spool within ``spool_write_interval`` and are sent from it."""
        return self._spool is not None and self.settings.spool_write_interval_s > 0

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="otel-assist-history", daemon=True)
        self._thread.start()
        if self.write_ahead:
            self._writer = threading.Thread(
                target=self._run_writer, name="otel-assist-history-spool", daemon=True
            )
            self._writer.start()

    def _run_writer(self) -> None:
        """Moves buffered events to the spool every ``spool_write_interval``: the bound on
        what a SIGKILL can lose. Its own thread, so a slow or hanging POST on the sender
        thread never holds the write back."""
        stop = self._stop
        while not stop.wait(self.settings.spool_write_interval_s):
            try:
                self._to_spool()
            except Exception as exc:  # the writer thread must not die
                _log.warning("history spool write failed", error=repr(exc))

    def _after_fork(self) -> None:
        self._pid = os.getpid()
        if self._spool is not None:
            # A lock another thread held at fork() would stay held in the child forever.
            self._spool.lock = threading.RLock()
            # Closing the inherited copy leaves the parent's flock in place (it lives
            # until every copy of the descriptor is closed); the parent keeps writing.
            self._spool.seal()
        for buf in self._buffers.values():
            buf.clear()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._start()

    def _run(self) -> None:
        client = httpx.Client(
            timeout=self.settings.timeout_s,
            transport=self._transport,
            headers=self._headers(),
        )
        try:
            while True:
                self._wake.wait(self.settings.flush_interval_s)
                self._wake.clear()
                stopping = self._stop.is_set()
                try:
                    self._cycle(client, final=stopping)
                except Exception as exc:  # the sender thread must not die
                    _log.warning("history shipper cycle failed", error=repr(exc))
                self._update_gauges()
                self._idle.set()
                if stopping:
                    return
        finally:
            client.close()

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.settings.token:
            headers["authorization"] = f"Bearer {self.settings.token}"
        return headers

    def _cycle(self, client: httpx.Client, final: bool) -> None:
        now = time.monotonic()
        if self.write_ahead:
            self._to_spool()  # what the writer has not moved yet: everything goes via disk
        if not final and now < self._next_attempt:
            self._to_spool()
            return
        try:
            self._send_spooled(client, final)
            if not self.write_ahead:  # write-ahead: nothing is sent that is not on disk
                for kind in KINDS:
                    self._send_memory(client, kind, final)
        except _Unavailable:
            self._failures += 1
            self._next_attempt = time.monotonic() + exponential_delay(
                self._failures, self.settings.retry_initial_s, self.settings.retry_max_s
            )
            if final:
                self._final_spill()
            else:
                self._to_spool()
            return
        self._failures = 0

    def _send_spooled(self, client: httpx.Client, final: bool) -> None:
        if self._spool is None:
            return
        self._spool.seal()
        for seg in self._spool.segments():
            with self._spool.claim(seg) as by_kind:
                if by_kind is None:  # another process is writing or replaying it
                    continue
                bad = by_kind.pop("bad", [])
                for kind, lines in by_kind.items():
                    for chunk in self._chunks(lines):
                        self._post(client, kind, chunk, final)  # type: ignore[arg-type]
                for line in bad:
                    # Not j|q <json>: a torn last line (crash mid-write) or a damaged file.
                    self._set_aside("spool", "line", "unreadable spool line", line)
                self._spool.remove(seg, {k: len(v) for k, v in by_kind.items()})

    def _chunks(self, lines: list[bytes]) -> Iterator[list[bytes]]:
        """Batches of at most ``batch_size`` events and BATCH_MAX_BYTES."""
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            if chunk and (len(chunk) >= self._batch or size + len(line) > BATCH_MAX_BYTES):
                yield chunk
                chunk, size = [], 0
            chunk.append(line)
            size += len(line) + 1
        if chunk:
            yield chunk

    def _send_memory(self, client: httpx.Client, kind: Kind, final: bool) -> None:
        buf = self._buffers[kind]
        while buf:
            batch: list[_Pending] = []
            while buf and len(batch) < self._batch:
                batch.append(buf.popleft())
            self._in_flight = len(batch)
            lines = self._wire_all(kind, batch)
            try:
                for i, chunk in enumerate(self._chunks(lines)):
                    try:
                        self._post(client, kind, chunk, final)
                    except _Unavailable:
                        # Back at the front, already serialised: the retry sends the same
                        # bytes (chunks before this one were accepted).
                        rest = [ln for c in list(self._chunks(lines))[i:] for ln in c]
                        buf.extendleft(reversed(rest))
                        raise
            finally:
                self._in_flight = 0

    def _wire_all(self, kind: Kind, batch: list[_Pending]) -> list[bytes]:
        """Serialise a batch, giving the GIL away every few events: a host event loop
        waiting for it would otherwise stall for up to the interpreter's switch interval
        (5 ms) while this thread works through a batch. Events that cannot be delivered
        are set aside (dead-letter file), never returned, never raised."""
        lines = []
        now = time.time()
        for i, event in enumerate(batch):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                time.sleep(0)
            line = self._wire(kind, event, now)
            if line is not None:
                lines.append(line)
        return lines

    def _wire(self, kind: Kind, event: _Pending, now: float) -> bytes | None:
        """One event as checked, JSON-encoded bytes; None when it was set aside."""
        if isinstance(event, bytes):
            return event
        if type(event) is tuple:  # deferred: built here, off the caller's path
            deferred: tuple[Any, ...] = event
            try:
                event = deferred[0](*deferred[1:])
            except Exception as exc:
                # Only a summary is set aside: the arguments may hold a raw payload, which
                # is masked only on the way to a dict.
                build = deferred[0] if deferred else None
                name = getattr(build, "__name__", type(build).__name__) if deferred else "?"
                summary = {"deferred": str(name)[:64], "arguments": max(0, len(deferred) - 1)}
                self._set_aside(kind, "event", f"unbuildable event: {type(exc).__name__}", summary)
                return None
        try:
            return self._wire_event(kind, event, now)  # type: ignore[arg-type]
        except Exception as exc:  # whatever it is, it costs this event only
            self._set_aside(kind, "event", f"unreadable event: {type(exc).__name__}", event)
            return None

    def _wire_event(self, kind: Kind, event: dict[str, Any], now: float) -> bytes | None:
        if type(event) is not dict:  # a Mapping of another kind: read it once, as a dict
            event = dict(event)
        try:
            raw = event.pop(PAYLOAD_RAW_KEY, None)
            if raw is not None:
                event["payload"] = self._capture(raw)
        except Exception as exc:  # an unreadable payload costs the payload, not the event
            event["payload"] = None
            self._note_fix(kind, "payload", f"payload capture failed: {type(exc).__name__}")
        cleaned = wire.clean(kind, event, now_ts=now)
        if cleaned.event is None:
            field, reason = cleaned.rejected or ("event", "invalid")
            self._set_aside(kind, field, reason, event)
            return None
        # Every text of the row is scrubbed by shape like a log line (DSN passwords, bearer
        # tokens, password= pairs, the operator's patterns): a job's error and traceback
        # carry whatever the exception said. The payload was masked at capture.
        scrub = self._capture.masker.redactor.scrub
        for key, value in cleaned.event.items():
            if type(value) is str and key != "payload":
                cleaned.event[key] = scrub(value)
        for field, reason in cleaned.fixed:
            self._note_fix(kind, field, reason)
        if cleaned.fixed:
            self._count(kind, "sanitized", 1)
        try:
            return orjson.dumps(cleaned.event)
        except (TypeError, orjson.JSONEncodeError) as exc:
            try:
                return orjson.dumps(wire.json_safe(cleaned.event))
            except (TypeError, orjson.JSONEncodeError):
                self._set_aside(kind, "event", f"not serialisable: {exc}", event)
                return None

    def _note_fix(self, kind: str, field: str, reason: str) -> None:
        with contextlib.suppress(Exception):
            self._fixes.note(kind, field, reason)

    def _set_aside(self, kind: str, field: str, reason: str, event: Any) -> None:
        """An undeliverable event: into the dead-letter file, counted, logged by field."""
        spooled_queue = isinstance(event, bytes) and event[:2] == b"q "
        counted = kind if kind in KINDS else "queue" if spooled_queue else "job"
        kept = self._dead.write(kind, field, reason, event)
        self._count(counted, "dead_letter" if kept else "dropped", 1)
        with contextlib.suppress(Exception):
            _log.error(
                "history event set aside: it cannot be delivered",
                kind=kind,
                field=str(field)[:64],
                reason=str(reason)[:300],
                dead_letter_file=str(self._dead.path) if kept else None,
            )

    def _post(self, client: httpx.Client, kind: Kind, lines: list[bytes], final: bool) -> None:
        """Deliver ``lines`` or raise _Unavailable (nothing of them counted as sent)."""
        if not lines:
            return
        path = self.settings.job_path if kind == "job" else self.settings.queue_path
        body = b'{"events":[' + b",".join(lines) + b"]}"
        timeout = self.settings.timeout_s
        if final:
            timeout = max(0.1, min(timeout, self._shutdown_deadline - time.monotonic()))
        try:
            resp = client.post(self.settings.url + path, content=body, timeout=timeout)
        except httpx.HTTPError as exc:
            self._count(kind, "retried", len(lines))
            raise _Unavailable(repr(exc)) from None
        if resp.status_code < 300:
            self._count(kind, "sent", len(lines))
            return
        if resp.status_code in (400, 413, 422):
            if len(lines) > 1:
                half = len(lines) // 2
                self._post(client, kind, lines[:half], final)
                self._post(client, kind, lines[half:], final)
                return
            field, reason = _refusal(resp)
            self._set_aside(kind, field, reason, lines[0])
            return
        self._count(kind, "retried", len(lines))
        raise _Unavailable(f"HTTP {resp.status_code}")

    def _to_spool(self) -> None:
        """Move buffered events to disk (if a spool is set): while rest_service is down,
        and with write-ahead all the time. Under the spool's lock: the writer thread and
        the sender both call it."""
        if self._spool is None:
            return
        with self._spool.lock:
            for kind in KINDS:
                buf = self._buffers[kind]
                while buf:
                    batch = [buf.popleft() for _ in range(min(len(buf), 2000))]
                    self._in_flight += len(batch)
                    try:
                        lines = self._wire_all(kind, batch)
                        written = self._spool.append(kind, lines)
                    finally:
                        self._in_flight -= len(batch)
                    self._count(kind, "spooled", written)
                    if written < len(lines):
                        self._count(kind, "dropped", len(lines) - written)

    def _final_spill(self) -> None:
        if self._spool is not None:
            self._to_spool()
            return
        for kind in KINDS:
            n = len(self._buffers[kind])
            self._buffers[kind].clear()
            self._count(kind, "dropped", n)
        if any(self.stats.get((k, "dropped"), 0) for k in KINDS):
            _log.warning("history events dropped at shutdown (rest_service unreachable)")

    def _count(self, kind: str, outcome: str, n: int) -> None:
        if n <= 0:
            return
        key = (kind, outcome)
        self.stats[key] = self.stats.get(key, 0) + n
        with contextlib.suppress(Exception):
            metrics.catalog()["history_events"].add(n, kind=kind, outcome=outcome)

    def _update_gauges(self) -> None:
        with contextlib.suppress(Exception):
            gauge = metrics.catalog()["history_buffered_events"]
            for kind in KINDS:
                spooled = self._spool.counts[kind] if self._spool else 0
                gauge.set(len(self._buffers[kind]) + spooled, kind=kind)


def _refusal(resp: httpx.Response) -> tuple[str, str]:
    """The field rest_service named in its 4xx (``loc`` after the event index), and why."""
    reason = f"refused by rest_service: HTTP {resp.status_code}"
    try:
        detail = resp.json()["detail"]
        if isinstance(detail, list) and detail:
            loc = [str(p) for p in detail[0].get("loc", [])]
            field = loc[3] if len(loc) > 3 and loc[:2] == ["body", "events"] else ".".join(loc)
            return field or "event", f"{reason}: {str(detail[0].get('msg', ''))[:200]}"
        return "event", f"{reason}: {str(detail)[:200]}"
    except Exception:
        return "event", reason


# --------------------------------------------------------------------------- default


class _Disabled(HistoryShipper):
    def __init__(self) -> None:
        super().__init__(HistorySettings())


_default: HistoryShipper | None = None
_default_lock = threading.Lock()


def default_shipper() -> HistoryShipper:
    """The process-wide shipper configured from the environment (disabled without a URL).

    A broken history configuration must not take the service down: it is logged and
    history is disabled.
    """
    global _default
    if _default is not None:
        return _default
    with _default_lock:
        if _default is None:
            try:
                _default = HistoryShipper()
            except Exception as exc:  # never let history take the service down
                _log.error("history shipper disabled: bad configuration", error=str(exc))
                _default = _Disabled()
            atexit.register(_default.shutdown)
    return _default


def set_default_shipper(shipper: HistoryShipper | None) -> None:
    """Install a shipper built in code (tests, services with their own settings)."""
    global _default
    with _default_lock:
        _default = shipper


def submit_all(kind: Kind, events: Iterable[dict[str, Any]]) -> None:
    shipper = default_shipper()
    for event in events:
        shipper.submit(kind, event)


def shipper_for(value: HistoryShipper | None, wanted: bool = True) -> HistoryShipper | None:
    """The shipper a component reports to: ``value``, else the process default; None when
    history is off for it (``wanted`` false) or nowhere to send (no URL)."""
    if not wanted:
        return None
    shipper = value if value is not None else default_shipper()
    return shipper if shipper.enabled else None
