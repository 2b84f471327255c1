"""The history shipper: job and queue events to rest_service, in batches, losing nothing.

Callers (queue producers/consumers on the event loop, job wrappers on executor threads)
only ``submit()`` a dict: one bounded ``deque.append``, no I/O, no lock, never an
exception. Everything else happens on one daemon thread per process:

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
* a 413/422 batch is split in halves until the offending single event is found and dropped
  (logged), so one bad event cannot block the rest;
* ``shutdown()`` (also at exit) sends what it can and spools the rest.

A dedicated thread with a synchronous httpx client, rather than a task on the host's
event loop, keeps the shipper usable from sync services (a BackgroundScheduler) and means
a slow rest_service can never stall the service's loop.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import httpx
import orjson

from otel_assist import metrics
from otel_assist.logs import get_logger
from otel_assist.settings import _Reader

Kind = Literal["job", "queue"]
KINDS: tuple[Kind, ...] = ("job", "queue")
PAYLOAD_RAW_KEY = "_payload_raw"
YIELD_EVERY = 16
_log = get_logger("otel_assist.history")


@dataclass(frozen=True)
class HistorySettings:
    """``OTEL_ASSIST_HISTORY_*`` (and the queue payload capture options)."""

    url: str = ""
    token: str = ""
    job_path: str = "/job-executions/events"
    queue_path: str = "/queue-stats/messages/batch"
    batch_size: int = 500
    flush_interval_s: float = 1.0
    buffer_size: int = 50_000
    timeout_s: float = 10.0
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    spool_dir: str = ""
    spool_max_bytes: int = 256 * 1024 * 1024
    spool_segment_bytes: int = 4 * 1024 * 1024
    capture_payload: bool = True
    payload_max_bytes: int = 4096

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HistorySettings:
        r = _Reader(os.environ if env is None else env)
        token = r.text("OTEL_ASSIST_HISTORY_TOKEN")
        token_file = r.text("OTEL_ASSIST_HISTORY_TOKEN_FILE")
        if not token and token_file:
            try:
                token = Path(token_file).read_text().strip()
            except OSError as exc:
                raise r.fail("OTEL_ASSIST_HISTORY_TOKEN_FILE", f"cannot read: {exc}") from None
        return cls(
            url=r.url("OTEL_ASSIST_HISTORY_URL").rstrip("/"),
            token=token,
            batch_size=r.integer("OTEL_ASSIST_HISTORY_BATCH_SIZE", 500, 1, 100_000),
            flush_interval_s=r.integer("OTEL_ASSIST_HISTORY_FLUSH_INTERVAL_MS", 1000, 10) / 1000,
            buffer_size=r.integer("OTEL_ASSIST_HISTORY_BUFFER_SIZE", 50_000, 1),
            timeout_s=r.integer("OTEL_ASSIST_HISTORY_TIMEOUT_MS", 10_000, 100) / 1000,
            retry_initial_s=r.integer("OTEL_ASSIST_HISTORY_RETRY_INITIAL_MS", 500, 10) / 1000,
            retry_max_s=r.integer("OTEL_ASSIST_HISTORY_RETRY_MAX_MS", 30_000, 10) / 1000,
            spool_dir=r.text("OTEL_ASSIST_HISTORY_SPOOL_DIR"),
            spool_max_bytes=r.integer(
                "OTEL_ASSIST_HISTORY_SPOOL_MAX_BYTES", 256 * 1024 * 1024, 1024
            ),
            capture_payload=r.boolean("OTEL_ASSIST_QUEUE_CAPTURE_PAYLOAD", True),
            payload_max_bytes=r.integer("OTEL_ASSIST_QUEUE_PAYLOAD_MAX_BYTES", 4096, 0),
        )


# --------------------------------------------------------------------------- payloads


class PayloadCapture:
    """Turns a raw queue message into the payload stored in history: secret-looking keys
    masked (the log pipeline's word list), JSON above ``max_bytes`` replaced by a marked
    preview. Runs on the shipper thread, never on the caller's path."""

    def __init__(self, enabled: bool, max_bytes: int) -> None:
        from otel_assist.log_processors import MaskSecrets
        from otel_assist.telemetry import current_settings

        self.enabled = enabled
        self.max_bytes = max_bytes
        self.masker = MaskSecrets(current_settings().secret_keys, max_depth=8)

    def __call__(self, raw: bytes | str) -> Any:
        if not self.enabled:
            return None
        try:
            data = orjson.loads(raw)
        except (orjson.JSONDecodeError, TypeError):
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            return self._truncate(text.replace("\x00", ""), len(raw))
        if isinstance(data, dict) and "v" in data and "payload" in data:
            data = data["payload"]
        masked = self.masker.mask(data)
        encoded = orjson.dumps(masked)
        if len(encoded) > self.max_bytes:
            return self._truncate(encoded.decode(), len(encoded))
        return masked

    def _truncate(self, text: str, size: int) -> Any:
        if len(text.encode()) <= self.max_bytes:
            return text
        preview = text.encode()[: self.max_bytes].decode("utf-8", "ignore")
        return {"_truncated": True, "size_bytes": size, "preview": preview}


# --------------------------------------------------------------------------- spool


class Spool:
    """Append-only JSONL segments in one directory. Each line is ``j <json>`` or
    ``q <json>``. A segment is deleted once every line in it was accepted.

    Several processes may share the directory (gunicorn or uvicorn workers with the same
    ``OTEL_ASSIST_HISTORY_SPOOL_DIR``). Each writes its own segments (pid in the name) and
    holds an exclusive ``flock`` on the one it is appending to; a replay claims a segment
    with a non-blocking ``flock`` first. So no process sends or deletes a segment another
    is still writing, and two processes never replay the same one. A process that dies
    releases its locks, and its segments are replayed by whoever runs next.
    """

    def __init__(self, directory: str, max_bytes: int, segment_bytes: int) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._current: Path | None = None
        self._fh: BinaryIO | None = None
        self._current_size = 0
        self._seq = 0
        self.counts: dict[str, int] = {"job": 0, "queue": 0}
        self.total_bytes = 0
        for seg in self.segments():
            with contextlib.suppress(OSError):
                self.total_bytes += seg.stat().st_size
            for kind, lines in self.read(seg).items():
                self.counts[kind] += len(lines)

    def segments(self) -> list[Path]:
        return sorted(self.dir.glob("*.jsonl"))

    def append(self, kind: Kind, lines: list[bytes]) -> int:
        """Write as many lines as the cap allows; returns how many were written."""
        prefix = b"j " if kind == "job" else b"q "
        out: list[bytes] = []
        size = 0
        for line in lines:
            n = len(line) + 3
            if self.total_bytes + size + n > self.max_bytes:
                break
            out.append(prefix + line + b"\n")
            size += n
        if not out:
            return 0
        fh = self._writable()
        fh.write(b"".join(out))
        fh.flush()
        os.fsync(fh.fileno())
        self._current_size += size
        self.total_bytes += size
        self.counts[kind] += len(out)
        return len(out)

    def _writable(self) -> BinaryIO:
        """The current segment, opened and locked; a new one when it is full."""
        if self._fh is not None and self._current_size < self.segment_bytes:
            return self._fh
        self.seal()
        self._seq += 1
        path = self.dir / f"{time.time_ns():020d}-{os.getpid()}-{self._seq}.jsonl"
        fh = path.open("ab")
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # a new file: nobody else holds it
        self._current, self._fh, self._current_size = path, fh, 0
        return fh

    def seal(self) -> None:
        """Close the current segment (releasing its lock) so it can be replayed; the next
        append starts a new one."""
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
        self._current, self._fh = None, None

    @contextlib.contextmanager
    def claim(self, path: Path) -> Iterator[dict[str, list[bytes]] | None]:
        """Lock a segment for replay and read it; None when another process holds it
        (writing or replaying it) or it is already gone. Delete it with ``remove()``
        inside the ``with`` so the lock covers the whole replay."""
        try:
            fh = path.open("rb")
        except OSError:
            yield None
            return
        with fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield None
                return
            if os.fstat(fh.fileno()).st_nlink == 0:  # replayed and deleted meanwhile
                yield None
                return
            yield self.parse(fh.read())

    @staticmethod
    def read(path: Path) -> dict[str, list[bytes]]:
        """The valid lines of a segment, without locking (start-up accounting, tests)."""
        try:
            return Spool.parse(path.read_bytes())
        except OSError:
            return {"job": [], "queue": []}

    @staticmethod
    def parse(data: bytes) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {"job": [], "queue": []}
        for line in data.split(b"\n"):
            if len(line) < 3:
                continue
            kind = "job" if line[:2] == b"j " else "queue" if line[:2] == b"q " else None
            if kind is None:
                continue
            body = line[2:]
            try:
                orjson.loads(body)  # a torn last line (crash mid-write) is skipped
            except orjson.JSONDecodeError:
                continue
            out[kind].append(body)
        return out

    def remove(self, path: Path, counts: Mapping[str, int]) -> None:
        if path == self._current:
            self.seal()
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            path.unlink()
            self.total_bytes = max(0, self.total_bytes - size)
        for kind, n in counts.items():
            self.counts[kind] = max(0, self.counts[kind] - n)


# --------------------------------------------------------------------------- shipper


class _Unavailable(Exception):
    """rest_service did not take the batch; retry later."""


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
        self._buffers: dict[str, deque[dict[str, Any] | bytes]] = {k: deque() for k in KINDS}
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

    def submit(self, kind: Kind, event: dict[str, Any]) -> None:
        """Queue one event. Constant time, no I/O, never raises."""
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
            if self._pid != os.getpid():
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

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="otel-assist-history", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        self._pid = os.getpid()
        if self._spool is not None:
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
        if not final and now < self._next_attempt:
            self._to_spool()
            return
        try:
            self._send_spooled(client, final)
            for kind in KINDS:
                self._send_memory(client, kind, final)
        except _Unavailable:
            self._failures += 1
            delay = min(
                self.settings.retry_max_s,
                self.settings.retry_initial_s * 2 ** min(self._failures - 1, 30),
            )
            self._next_attempt = time.monotonic() + delay / 2 + random.uniform(0, delay / 2)
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
                for kind, lines in by_kind.items():
                    for i in range(0, len(lines), self._batch):
                        self._post(client, kind, lines[i : i + self._batch], final)  # type: ignore[arg-type]
                self._spool.remove(seg, {k: len(v) for k, v in by_kind.items()})

    def _send_memory(self, client: httpx.Client, kind: Kind, final: bool) -> None:
        buf = self._buffers[kind]
        while buf:
            batch: list[dict[str, Any] | bytes] = []
            while buf and len(batch) < self._batch:
                batch.append(buf.popleft())
            self._in_flight = len(batch)
            try:
                lines = self._wire_all(kind, batch)
                self._post(client, kind, lines, final)
            except _Unavailable:
                # Back at the front, already serialised, so the retry sends the same bytes.
                buf.extendleft(reversed(lines))
                raise
            finally:
                self._in_flight = 0

    def _wire_all(self, kind: Kind, batch: list[dict[str, Any] | bytes]) -> list[bytes]:
        """Serialise a batch, giving the GIL away every few events: a host event loop
        waiting for it would otherwise stall for up to the interpreter's switch interval
        (5 ms) while this thread works through a batch."""
        lines = []
        for i, event in enumerate(batch):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                time.sleep(0)
            lines.append(self._wire(kind, event))
        return lines

    def _wire(self, kind: Kind, event: dict[str, Any] | bytes) -> bytes:
        if isinstance(event, bytes):
            return event
        raw = event.pop(PAYLOAD_RAW_KEY, None)
        if raw is not None:
            event["payload"] = self._capture(raw)
        return orjson.dumps(event, default=str)

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
        if resp.status_code in (413, 422):
            if len(lines) > 1:
                half = len(lines) // 2
                self._post(client, kind, lines[:half], final)
                self._post(client, kind, lines[half:], final)
                return
            self._count(kind, "dropped", 1)
            _log.error(
                "history event rejected by rest_service",
                status=resp.status_code,
                kind=kind,
                detail=resp.text[:500],
            )
            return
        self._count(kind, "retried", len(lines))
        raise _Unavailable(f"HTTP {resp.status_code}")

    def _to_spool(self) -> None:
        """While rest_service is down, move buffered events to disk (if a spool is set)."""
        if self._spool is None:
            return
        for kind in KINDS:
            buf = self._buffers[kind]
            while buf:
                batch = [buf.popleft() for _ in range(min(len(buf), 2000))]
                lines = self._wire_all(kind, batch)
                written = self._spool.append(kind, lines)
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
