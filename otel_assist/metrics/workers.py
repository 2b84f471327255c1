"""One ``/metrics`` for a service run as several worker processes.

With ``uvicorn --workers N`` or gunicorn, every worker has its own MeterProvider, and each
scrape of the service's ``/metrics`` reaches whichever worker accepts the connection:
Prometheus sees one worker's counters, then another's (the upstream problem
opentelemetry-python #3747 / #3885), so ``rate()`` and ``sum()`` are wrong.

The mechanism, in the manner of prometheus_client's multiprocess mode but over the
OpenTelemetry reader's output: each worker writes a **snapshot** of its own exposition
(the samples of the default Prometheus registry, where the OpenTelemetry reader is
registered) into a directory shared by the workers of one service, once a second and at
shutdown. The worker that answers a scrape merges its live samples with the other workers'
snapshots:

* counters and histograms (``_total``, ``_count``, ``_sum``, ``_bucket``) are **summed over
  every worker that ever ran under this supervisor**, the dead included (their last snapshot
  is kept): a worker restarted by its supervisor adds from zero to the sum instead of
  resetting it, so the series stays monotonic and ``increase()`` stays right;
* gauges are summed over the **live** workers only (a dead worker's gauges are stale);
* ``process_*``/``python_*`` (prometheus_client's per-process collectors) and ``target_info``
  are the answering worker's own: they describe one process;
* ``_created`` samples take the earliest.

The result has the same series (names and labels) as a single-process service: the choice
made here is *summed*, so cardinality does not grow with the worker count and dashboards
need no ``sum by`` over a worker label. A worker's counts reach the merged view at most one
second after they happen (the snapshot interval); a SIGKILLed worker loses at most that.
The worker that answers a scrape also writes its snapshot from the very samples it serves,
so a count Prometheus has stored is on disk: a SIGKILL never takes the sum below a value
already scraped (which Prometheus would read as a counter reset).

When it is on (:func:`store_for`): ``OTEL_ASSIST_METRICS_DIR`` names the directory (``off``
turns the mechanism off); otherwise it turns itself on in a process that is a worker: a
``multiprocessing`` child under uvicorn (``--workers``, ``--reload``), a process forked from
a configured one (gunicorn ``--preload``), or a gunicorn worker; the directory is then
``$TMPDIR/otel-assist-metrics/<service>-<supervisor pid>``, so separate services and separate
runs never mix. Snapshots of a previous run (whose supervisor is gone) are removed at start.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

SNAPSHOT_INTERVAL_S = 1.0
_OWN_ONLY = re.compile(r"^(process_|python_|target_info$)")
_MONOTONIC_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
_SUFFIX = ".snapshot.json"

Sample = tuple[str, tuple[tuple[str, str], ...], float]
"""(sample name, sorted labels, value)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process with that pid: alive
        return True
    return True


def is_worker_process() -> bool:
    """True in a worker of uvicorn's or gunicorn's multi-process modes (see module doc).

    uvicorn starts its workers (and its reloader's child) with ``multiprocessing``; a
    gunicorn worker is a gunicorn process whose parent, the arbiter, is one too.
    """
    if multiprocessing.parent_process() is not None and "uvicorn" in sys.modules:
        return True
    if "gunicorn" not in os.path.basename(sys.argv[0] if sys.argv else ""):
        return False
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return False
    return b"gunicorn" in parent


def default_directory(service_name: str, supervisor_pid: int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", service_name)[:64] or "service"
    return Path(tempfile.gettempdir()) / "otel-assist-metrics" / f"{safe}-{supervisor_pid}"


class WorkerMetricsStore:
    """This worker's snapshots in ``directory``, and the merged view of all of them."""

    def __init__(
        self,
        directory: Path,
        *,
        registry: Any = None,
        interval_s: float = SNAPSHOT_INTERVAL_S,
    ) -> None:
        from prometheus_client import REGISTRY

        self.directory = directory
        self.registry = registry if registry is not None else REGISTRY
        self.interval_s = interval_s
        self.pid = os.getpid()
        self.supervisor_pid = os.getppid()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{self.pid}{_SUFFIX}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Collect and write under one lock: a snapshot on disk is never replaced by an
        # older collect, so this worker's file only ever goes up.
        self._write_lock = threading.Lock()
        self._remove_previous_runs()

    # -- writing ---------------------------------------------------------------------
    def start(self) -> None:
        self.write_snapshot()
        self._thread = threading.Thread(
            target=self._run, name="otel-assist-worker-metrics", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(Exception):  # a full disk must not kill the worker
                self.write_snapshot()

    def stop(self) -> None:
        """Write the final snapshot (kept for the sum after this worker exits)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * self.interval_s)
        with contextlib.suppress(Exception):
            self.write_snapshot()

    def write_snapshot(self) -> None:
        """Collect this worker's samples and write them as its snapshot."""
        with self._write_lock:
            self._write(list(_families(self.registry)))

    def _write(self, families: list[tuple[str, str, str, list[Sample]]]) -> None:
        payload = {
            "pid": self.pid,
            "supervisor": self.supervisor_pid,
            "families": families,
        }
        tmp = self.path.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_bytes(orjson.dumps(payload))
        os.replace(tmp, self.path)

    def _remove_previous_runs(self) -> None:
        for path in self.directory.glob(f"*{_SUFFIX}"):
            snapshot = _read(path)
            if snapshot is not None and not _alive(int(snapshot.get("supervisor", 0))):
                with contextlib.suppress(OSError):
                    path.unlink()

    # -- reading ---------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The merged Prometheus text exposition (see the module doc for the rules)."""
        return render(self.merged())

    def merged(
        self,
    ) -> list[tuple[str, str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]]:
        with self._write_lock:
            own = list(_families(self.registry))
            with contextlib.suppress(Exception):  # a full disk must not fail the scrape
                self._write(own)
        others = []
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            if path == self.path:
                continue
            snapshot = _read(path)
            if snapshot is None:
                continue
            live = _alive(int(snapshot.get("pid", 0)))
            others.append((live, snapshot.get("families", [])))
        return merge(own, others)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None  # being replaced, or unreadable: skipped for this scrape
    return value if isinstance(value, dict) else None


def _families(registry: Any) -> Iterator[tuple[str, str, str, list[Sample]]]:
    for family in registry.collect():
        samples = [
            (s.name, tuple(sorted(s.labels.items())), float(s.value)) for s in family.samples
        ]
        yield family.name, family.type, family.documentation, samples


def merge(
    own: Iterable[tuple[str, str, str, list[Sample]]],
    others: Iterable[tuple[bool, list[Any]]],
) -> list[tuple[str, str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]]:
    """Merge the answering worker's families with other workers' snapshots."""
    merged: dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]] = {}
    order: list[str] = []

    def add(name: str, kind: str, doc: str, samples: Iterable[Any], live: bool) -> None:
        if name not in merged:
            merged[name] = (kind, doc, {})
            order.append(name)
        values = merged[name][2]
        for sample_name, labels, value in samples:
            key = (sample_name, tuple((str(k), str(v)) for k, v in labels))
            if key not in values:
                values[key] = value
            elif sample_name.endswith("_created"):
                values[key] = min(values[key], value)
            else:
                values[key] += value

    for name, kind, doc, samples in own:
        add(name, kind, doc, samples, True)
    for live, families in others:
        for name, kind, doc, samples in families:
            if _OWN_ONLY.match(name):
                continue
            monotonic = kind in ("counter", "histogram", "summary")
            if not live and not monotonic:
                continue
            if monotonic:
                kept = (*_MONOTONIC_SUFFIXES, "_created")
                samples = [s for s in samples if str(s[0]).endswith(kept)]
            add(name, kind, doc, samples, live)
    return [(name, merged[name][0], merged[name][1], merged[name][2]) for name in order]


MergedFamily = tuple[str, str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]


def _metrics(families: Iterable[MergedFamily]) -> Iterator[Any]:
    from prometheus_client.core import Metric

    for name, kind, doc, values in families:
        metric = Metric(name, doc, kind)
        for (sample_name, labels), value in values.items():
            metric.add_sample(sample_name, dict(labels), value)
        yield metric


class MergedRegistry:
    """A registry-shaped view for prometheus_client's own HTTP server (the standalone
    ``OTEL_EXPORTER_PROMETHEUS_PORT`` endpoint): every collect is a fresh merge."""

    def __init__(self, store: WorkerMetricsStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        return _metrics(self.store.merged())


def render(families: Iterable[MergedFamily]) -> bytes:
    """Prometheus text format 0.0.4 for merged families."""
    from prometheus_client.exposition import generate_latest

    class _Merged:
        def collect(self) -> Iterator[Any]:
            return _metrics(families)

    return generate_latest(_Merged())


_store: WorkerMetricsStore | None = None
_store_lock = threading.Lock()


def store_for(
    service_name: str, setting: str, *, forked: bool = False
) -> WorkerMetricsStore | None:
    """Start (or restart after a fork) this process's store when the mechanism is on."""
    global _store
    with _store_lock:
        if _store is not None and _store.pid == os.getpid():
            return _store
        choice = setting.strip()
        if choice.lower() == "off":
            _store = None
            return None
        if choice:
            directory = Path(choice)
        elif forked or is_worker_process():
            directory = default_directory(service_name, os.getppid())
        else:
            _store = None
            return None
        _store = WorkerMetricsStore(directory)
        _store.start()
        return _store


def current() -> WorkerMetricsStore | None:
    """The running store of this process, if any (the /metrics handlers ask)."""
    store = _store
    return store if store is not None and store.pid == os.getpid() else None


def stop() -> None:
    """Final snapshot at shutdown (telemetry's shutdown calls this)."""
    store = current()
    if store is not None:
        store.stop()
