"""The on-disk spool: history events waiting for rest_service, in append-only JSONL
segments that survive a restart (and a SIGKILL, minus the last write interval)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import orjson

from otel_assist.history.wire import Kind


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
        #: The write-ahead thread appends while the sender seals and removes.
        self.lock = threading.RLock()
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
                if kind in self.counts:
                    self.counts[kind] += len(lines)

    def segments(self) -> list[Path]:
        return sorted(self.dir.glob("*.jsonl"))

    def append(self, kind: Kind, lines: list[bytes]) -> int:
        """Write as many lines as the cap allows; returns how many were written."""
        with self.lock:
            return self._append(kind, lines)

    def _append(self, kind: Kind, lines: list[bytes]) -> int:
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
        with self.lock:
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
            return {"job": [], "queue": [], "bad": []}

    @staticmethod
    def parse(data: bytes) -> dict[str, list[bytes]]:
        """Lines by kind; lines that are not ``j|q <json>`` (a torn last line after a crash
        mid-write, a damaged file) under ``"bad"``, for the dead-letter file."""
        out: dict[str, list[bytes]] = {"job": [], "queue": [], "bad": []}
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            kind = "job" if line[:2] == b"j " else "queue" if line[:2] == b"q " else None
            if kind is None:
                out["bad"].append(line)
                continue
            body = line[2:]
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError:
                out["bad"].append(line)
                continue
            out[kind].append(body)
        return out

    def remove(self, path: Path, counts: Mapping[str, int]) -> None:
        with self.lock:
            if path == self._current:
                self.seal()
            with contextlib.suppress(OSError):
                size = path.stat().st_size
                path.unlink()
                self.total_bytes = max(0, self.total_bytes - size)
            for kind, n in counts.items():
                if kind in self.counts:
                    self.counts[kind] = max(0, self.counts[kind] - n)
