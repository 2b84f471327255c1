"""Every container's stdout/stderr reaches Loki: collector/config.yaml's filelog receiver on
Docker's json-file logs, with the real Collector and the Loki stand-in.

No Docker runs here, so the test writes what Docker's json-file driver writes, in its layout:
``<root>/<container id>/<container id>-json.log``, one JSON object a line
(``{"log": "...\\n", "stream": "stderr", "time": "...Z", "attrs": {...}}``), lines over
16 KiB split into pieces of which only the last ends in a newline, and ``attrs`` holding
what compose's logging options ask for (``labels: com.docker.compose.service``,
``env: OTEL_LOGS_EXPORTER``; docker-compose.yml). The Collector runs the compose stack's own
config file, with only addresses and the log directory pointed at the test's.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests import servers
from tests.collector.conftest import Collector, start_collector
from tests.loki.standin import Entry, LokiStandIn
from tests.polling import poll

# room for a first (cold) Collector build in the session fixture
pytestmark = pytest.mark.timeout(1500)

#: Docker's json-file driver splits a line at 16 KiB (moby: daemon/logger, bufio 16K).
DOCKER_PIECE = 16 * 1024
#: What the Collector's recombine step keeps a line under (collector/config.yaml).
MAX_PIECE = 224 * 1024
#: The only Loki index labels (monitoring/loki/loki.yaml).
ALLOWED_LABELS = {"service_name", "deployment_environment_name"}


def docker_time(ns: int) -> str:
    """Docker's RFC 3339 timestamp with nanoseconds, in UTC."""
    stamp = datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ns % 10**9:09d}Z"


@dataclass
class Container:
    """One container's json-file log, written the way Docker writes it."""

    root: Path
    service: str | None
    otlp: bool = False
    id: str = field(default_factory=lambda: secrets.token_hex(32))
    written: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.root / self.id / f"{self.id}-json.log"

    def attrs(self) -> dict[str, str]:
        attrs = {}
        if self.service is not None:
            attrs["com.docker.compose.service"] = self.service
        if self.otlp:
            attrs["OTEL_LOGS_EXPORTER"] = "otlp"
        return attrs

    def print(self, *lines: str, stream: str = "stdout") -> None:
        """What the process printed, one call per line (no newline inside a line)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        out = []
        for line in lines:
            assert "\n" not in line
            data = line + "\n"
            pieces = [data[i : i + DOCKER_PIECE] for i in range(0, len(data), DOCKER_PIECE)]
            for piece in pieces:
                entry: dict[str, object] = {
                    "log": piece,
                    "stream": stream,
                    "time": docker_time(time.time_ns()),
                }
                if self.attrs():
                    entry["attrs"] = self.attrs()
                out.append(json.dumps(entry, separators=(",", ":")) + "\n")
            self.written.append(line)
        with self.path.open("a", encoding="utf-8", errors="surrogatepass") as f:
            f.write("".join(out))

    def write_raw(self, data: bytes) -> None:
        """Bytes that are not Docker's JSON (a torn or corrupted line)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as f:
            f.write(data)


def lines_of(loki: LokiStandIn, container: Container) -> list[Entry]:
    """The stored lines of one container (container.id is structured metadata)."""
    return [e for e in loki.entries() if dict(e.metadata).get("container_id") == container.id]


def as_go_decodes(text: str) -> str:
    r"""``text`` after a JSON round trip through Go: json.dumps writes a lone surrogate as
    ``\udcff``; Go's decoder turns each unpaired one into U+FFFD and joins valid pairs."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


@dataclass
class Run:
    loki: LokiStandIn
    collector: Collector
    root: Path


def _start(binary: Path, workdir: Path, loki: LokiStandIn, root: Path) -> Collector:
    return start_collector(
        binary,
        workdir,
        loki.endpoint,
        # No service sends metrics here; the metrics pipeline only needs an address.
        f"http://127.0.0.1:{servers.free_port()}/api/v1/write",
        extra_env={
            "OTELCOL_CONTAINER_LOGS": f"{root}/*/*-json.log*",
            "OTELCOL_DEPLOYMENT_ENVIRONMENT": "test",
        },
    )


@pytest.fixture
def run(collector_binary: Path, tmp_path: Path) -> Iterator[Run]:
    loki = LokiStandIn().start()
    root = tmp_path / "containers"
    root.mkdir()
    collector = _start(collector_binary, tmp_path / "collector", loki, root)
    try:
        yield Run(loki, collector, root)
    finally:
        collector.process.stop()
        loki.stop()


@pytest.fixture(scope="module")
def shared_run(collector_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("container-logs")
    loki = LokiStandIn().start()
    root = tmp / "containers"
    root.mkdir()
    collector = _start(collector_binary, tmp / "collector", loki, root)
    try:
        yield Run(loki, collector, root)
    finally:
        collector.process.stop()
        loki.stop()


def wait_for_line(loki: LokiStandIn, container: Container, line: str, timeout: float = 30) -> None:
    poll(
        lambda: any(e.line == line for e in lines_of(loki, container)),
        timeout,
        f"{line!r} from {container.service} at the Loki stand-in",
    )


def wait_for_offsets_saved(collector: Collector, since_ns: int) -> None:
    """Until the file_log receiver has written its storage file after ``since_ns``.

    The receiver saves every file's read offset at the end of each poll (200 ms, its
    default), while what the poll read is already on its way to Loki: lines can be at Loki
    before their offset is saved. A save after ``since_ns`` (a time at which the lines were
    already at Loki, so already read) holds their offsets. The file's mtime comes from the
    kernel's coarse clock, which lags: a save looks older than it is, never newer, so this
    can wait one poll longer than needed but never returns early."""

    def saved() -> bool:
        files = list(collector.storage_dir.glob("receiver_*"))
        return any(f.stat().st_mtime_ns > since_ns for f in files)

    poll(saved, 10, "the file_log receiver's offsets saved after the lines reached Loki")


TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/app/main.py", line 3, in <module>',
    "    import otel_assist; settings = load()",
    "KeyError: 'DATABASE_URL'",
]


def test_container_lines_arrive_labelled_and_otlp_records_are_not_ingested_twice(
    run: Run,
) -> None:
    postgres = Container(run.root, "postgres")
    rest = Container(run.root, "rest_service", otlp=True)
    postgres.print(
        "2026-12-05 21:00:00.000 UTC [1] LOG:  database system is ready to accept connections"
    )
    postgres.print(*TRACEBACK, stream="stderr")
    many_fields = json.dumps({f"k{i}": i for i in range(300)})
    postgres.print('{"msg":"no level here"}', many_fields)
    postgres.print('{"level":"error","msg":"disk almost full","ts":"2026-12-05T21:00:01Z"}')
    # rest_service: a crash before configure() (no JSON), then otel_assist's JSON records,
    # which it also exports over OTLP, then one more plain line as the end marker.
    rest.print(*TRACEBACK, stream="stderr")
    records = [
        json.dumps({"event_type": "request_in", "event": "GET /health", "level": "info"}),
        json.dumps({"event_type": "response", "event": "200", "level": "info", "user_id": 7}),
        '  {"event": "indented JSON is a record too", "level": "warning"}',
    ]
    rest.print(*records)
    rest.print("Uvicorn: shutting down (marker)")

    wait_for_line(
        run.loki, postgres, '{"level":"error","msg":"disk almost full","ts":"2026-12-05T21:00:01Z"}'
    )
    # The marker is behind the JSON records in the same file, read and sent in order.
    wait_for_line(run.loki, rest, "Uvicorn: shutting down (marker)")

    pg_lines = lines_of(run.loki, postgres)
    assert [e.line for e in pg_lines] == postgres.written
    rest_lines = lines_of(run.loki, rest)
    assert [e.line for e in rest_lines] == [*TRACEBACK, "Uvicorn: shutting down (marker)"]
    assert not set(records) & {e.line for e in run.loki.entries()}, "OTLP records ingested twice"

    for entry, container in [(e, postgres) for e in pg_lines] + [(e, rest) for e in rest_lines]:
        assert dict(entry.stream) == {
            "service_name": container.service,
            "deployment_environment_name": "test",
        }
        meta = dict(entry.metadata)
        assert set(meta) >= {"container_id", "log_iostream"}
        assert "attrs" not in meta and "OTEL_LOGS_EXPORTER" not in meta
        assert "log_file_path" not in meta
    streams = Counter(dict(e.metadata)["log_iostream"] for e in pg_lines)
    assert streams == {"stdout": 4, "stderr": len(TRACEBACK)}
    # A JSON line: fields as structured metadata, its level as the detected level.
    by_line = {e.line: dict(e.metadata) for e in pg_lines}
    error_line = by_line['{"level":"error","msg":"disk almost full","ts":"2026-12-05T21:00:01Z"}']
    assert error_line["msg"] == "disk almost full"
    assert error_line["detected_level"] == "error"
    assert by_line['{"msg":"no level here"}']["msg"] == "no level here"
    assert by_line['{"msg":"no level here"}']["detected_level"] == "unknown"
    # 300 fields would pass Loki's 128 structured-metadata entries: kept as a line only.
    assert "k0" not in by_line[many_fields] and len(by_line[many_fields]) < 128
    # Only the allowlisted index labels, on every stream the stand-in holds.
    assert {k for e in run.loki.entries() for k, _ in e.stream} <= ALLOWED_LABELS


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_restart_neither_resends_nor_loses_lines(run: Run, stop: str) -> None:
    redis = Container(run.root, "redis")
    counter = itertools.count()
    before = [f"redis line {next(counter)}" for _ in range(200)]
    redis.print(*before)
    wait_for_line(run.loki, redis, before[-1])

    if stop == "SIGKILL":
        # A crash after the reader saved its offsets; a crash before it is at least once
        # (test_crash_while_reading_loses_nothing).
        wait_for_offsets_saved(run.collector, time.time_ns())
        run.collector.process.kill()
    else:
        run.collector.process.stop()
    # Written while the Collector is down: appended to the known file, and a new container.
    during = [f"redis line {next(counter)}" for _ in range(150)]
    redis.print(*during)
    grafana = Container(run.root, "grafana")
    grafana.print(*(f"grafana line {i}" for i in range(50)))
    run.collector.process.start()

    after = [f"redis line {next(counter)}" for _ in range(100)]
    redis.print(*after)
    wait_for_line(run.loki, redis, after[-1])
    wait_for_line(run.loki, grafana, "grafana line 49")

    for container in (redis, grafana):
        stored = Counter(e.line for e in lines_of(run.loki, container))
        sent = container.written
        lost = [line for line in sent if line not in stored]
        duplicated = sum(n - 1 for n in stored.values() if n > 1)
        print(
            f"{container.service}: sent {len(sent)}, stored {sum(stored.values())}, "
            f"lost {len(lost)}, duplicated {duplicated}"
        )
        assert not lost and duplicated == 0
        assert set(stored) == set(sent)
        # ... and in the order they were written.
        assert [e.line for e in lines_of(run.loki, container)] == sent


def test_huge_line_arrives_whole_in_pieces_under_lokis_line_limit(shared_run: Run) -> None:
    big = Container(shared_run.root, "loki")
    huge = "".join(f"{i:08d}|" for i in range(1024 * 1024 // 9 + 1))[: 1024 * 1024]
    big.print("before the huge line", huge, "after the huge line")
    wait_for_line(shared_run.loki, big, "after the huge line")
    lines = [e.line for e in lines_of(shared_run.loki, big)]
    assert lines[0] == "before the huge line" and lines[-1] == "after the huge line"
    pieces = lines[1:-1]
    print(f"a {len(huge)} B line arrived as {len(pieces)} lines of {[len(p) for p in pieces]} B")
    assert "".join(pieces) == huge  # nothing truncated, nothing lost
    assert all(len(p.encode()) <= 256 * 1024 for p in pieces)


# Hostile text: lone surrogates (written as JSON escapes, as json.dumps does), control
# characters, quotes and backslashes, JSON-looking text, long runs.
_hostile_char = st.one_of(
    st.characters(codec="utf-8", exclude_characters="\n"),
    st.characters(categories=["Cs"]),
    st.characters(categories=["Cc"], exclude_characters="\n"),
    st.sampled_from(['"', "\\", "{", "}", "\u2028", "\ufeff"]),
)
_hostile_line = st.one_of(
    st.text(_hostile_char, min_size=1, max_size=200),
    st.builds(lambda s: "{" + s, st.text(_hostile_char, max_size=100)),
    st.builds(lambda n, c: c * n, st.integers(17_000, 40_000), st.sampled_from("x\t\x01é")),
)
_TIME_GARBAGE = b'{"log":"\\udcff","stream":"stdout","time":"not a time"}'
_garbage = st.one_of(
    # (no newline or carriage return inside: the test ends each with one newline)
    st.binary(min_size=1, max_size=300).map(
        lambda b: b"#" + b.replace(b"\n", b" ").replace(b"\r", b" ")
    ),
    st.just(b'{"log":"torn line without its end'),
    st.just(_TIME_GARBAGE),
)
_counter = itertools.count()


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lines=st.lists(_hostile_line, min_size=1, max_size=8), garbage=st.lists(_garbage, max_size=2)
)
@example(
    lines=["\udcff lone", "ctl \x00\x01\x1b[31m\x7f", '{"level": "\udc80"}'],
    garbage=[b"\xff\xfe not json", b'{"log":"torn line without its end', _TIME_GARBAGE],
)
def test_hostile_lines_do_not_stop_the_pipeline(
    shared_run: Run, lines: list[str], garbage: list[bytes]
) -> None:
    service = f"svc{next(_counter)}"
    container = Container(shared_run.root, service)
    # A first line of its own: the Collector tells files apart by their first 1000 bytes
    # (docs/logs.md, "Container logs"), and two containers whose logs begin with the same
    # 1000 bytes are one file to it.
    container.print(f"{service} starting")
    container.print(*lines, stream="stderr")
    for raw in garbage:
        container.write_raw(raw)
        container.write_raw(b"\n")  # a torn line is ended by Docker's next write
    marker = f"marker of {service}"
    container.print(marker)
    wait_for_line(shared_run.loki, container, marker)

    stored = [e.line for e in lines_of(shared_run.loki, container)]
    expected = [as_go_decodes(line) for line in lines]
    # Every printed line arrived once, in order (a long one possibly joined from pieces).
    labelled = [
        e.line
        for e in lines_of(shared_run.loki, container)
        if dict(e.stream).get("service_name") == service
    ]
    assert labelled[0] == f"{service} starting" and labelled[-1] == marker
    assert labelled[1:-1] == expected, (labelled[1:-1], expected)
    # Lines that are not Docker's JSON arrive too, one each, under Loki's unknown_service.
    unlabelled = [
        e for e in lines_of(shared_run.loki, container) if dict(e.stream)["service_name"] != service
    ]
    assert len(unlabelled) == len(garbage), [e.line for e in unlabelled]
    assert {dict(e.stream)["service_name"] for e in unlabelled} <= {"unknown_service"}
    assert len(stored) == len(labelled) + len(garbage)


def test_crash_while_reading_loses_nothing(run: Run) -> None:
    """SIGKILL in the middle of a burst: at least once, never lost.

    The reader saves a file's offset when it has read to its end (each poll), while what it
    read is already in the exporter's persistent queue; a crash in between re-reads the
    lines since the last saved offset. The queue itself is at least once too: a push that
    Loki stored but whose answer the crash cut off is sent again. So a crash (not a restart:
    the tests above) costs duplicates, counted here: at most three copies of a line."""
    postgres = Container(run.root, "postgres")
    burst = [f"postgres burst line {i:05d} " + "." * 200 for i in range(20_000)]
    postgres.print(*burst)
    poll(lambda: lines_of(run.loki, postgres), 30, "the first lines of the burst")
    run.collector.process.kill()
    at_kill = len(lines_of(run.loki, postgres))
    run.collector.process.start()
    postgres.print("postgres after the crash")
    wait_for_line(run.loki, postgres, "postgres after the crash", timeout=120)

    stored = Counter(e.line for e in lines_of(run.loki, postgres))
    lost = [line for line in postgres.written if line not in stored]
    duplicated = sum(n - 1 for n in stored.values() if n > 1)
    print(
        f"SIGKILL with {at_kill} of {len(burst)} lines stored: sent {len(postgres.written)}, "
        f"stored {sum(stored.values())}, lost {len(lost)}, duplicated {duplicated}"
    )
    assert not lost
    assert max(stored.values()) <= 3, "more copies than one re-read plus one re-sent push"
    assert 0 < at_kill < len(burst), "the kill did not land in the middle of the burst"
