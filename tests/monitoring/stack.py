"""The monitoring stack of the end-to-end test, on loopback ports.

Real programs: the otel-assist Collector (built from collector/), Prometheus and
Alertmanager (Debian packages), Redis and PostgreSQL with their Prometheus exporters, and
instrumented workload processes (``tests/monitoring/workload.py``). The only stand-in is
``TelegramStandIn``: a local HTTP server in place of Telegram's Bot API that records every
``sendMessage`` Alertmanager makes.

What differs from the compose stack, and why (all in the loaded copies, never the repo):
- Prometheus scrapes/evaluates every 1s instead of 15s (postgres_exporter: 3s);
- every alert rule's ``for`` is 2s instead of minutes, and ServiceDown's freshness window
  ``last_over_time(target_info[2m])`` is 10s, so a stopped service alerts in seconds;
- Alertmanager's group_wait 30s -> 1s and group_interval 5m -> 2s (repeat_interval stays);
- the services export metrics over OTLP every 1s (default 60s);
- the Collector's Loki endpoint answers 404 (there is no Loki here).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests import servers
from tests.monitoring.helpers import ALERTMANAGER_DIR, MONITORING, ROOT, RULES_DIR
from tests.polling import poll

BOT_TOKEN = "424242:stand-in-token_for-tests"
CHAT_ID = -1001234567890
WORKLOADS = ("rest_service", "assistant", "cron", "calendar")


# --------------------------------------------------------------------------- Telegram stand-in


@dataclass
class SentMessage:
    path: str
    chat_id: str
    text: str
    parse_mode: str
    disable_notification: bool
    received_at: float


@dataclass
class TelegramStandIn:
    """A stand-in for https://api.telegram.org: records sendMessage calls, answers ok."""

    server: ThreadingHTTPServer
    messages: list[SentMessage] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def wait_for(
        self, match: Callable[[SentMessage], bool], timeout: float, what: str
    ) -> SentMessage:
        def first_match() -> SentMessage | None:
            with self.lock:
                return next((m for m in self.messages if match(m)), None)

        def seen() -> str:
            with self.lock:
                return "Telegram got:\n" + "\n---\n".join(m.text for m in self.messages)

        return poll(first_match, timeout, f"Telegram message {what}", 0.2, describe=seen)


def start_telegram_stand_in() -> TelegramStandIn:
    stand_in: TelegramStandIn

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            if self.headers.get("Content-Type", "").startswith("application/json"):
                params = {k: str(v) for k, v in json.loads(body or "{}").items()}
            else:
                params = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
            with stand_in.lock:
                stand_in.requests.append(self.path)
            if self.path.endswith("/sendMessage"):
                with stand_in.lock:
                    stand_in.messages.append(
                        SentMessage(
                            path=self.path,
                            chat_id=params.get("chat_id", ""),
                            text=params.get("text", ""),
                            parse_mode=params.get("parse_mode", ""),
                            disable_notification=params.get("disable_notification") == "true",
                            received_at=time.monotonic(),
                        )
                    )
                    n = len(stand_in.messages)
                result: dict[str, Any] = {
                    "message_id": n,
                    "date": int(time.time()),
                    "chat": {"id": int(params.get("chat_id") or 0), "type": "supergroup"},
                    "text": params.get("text", ""),
                }
            else:  # getMe and friends
                result = {"id": 424242, "is_bot": True, "first_name": "stand-in", "username": "x"}
            payload = json.dumps({"ok": True, "result": result}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stand_in = TelegramStandIn(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return stand_in


# --------------------------------------------------------------------------- config copies


def shortened_rules(dest: Path) -> Path:
    """Copies of the project's rule files with the test's short durations (see module doc)."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in RULES_DIR.glob("*.yml"):
        text = path.read_text()
        text = re.sub(r"(?m)^(\s+for:) \S+$", r"\1 2s", text)
        text = text.replace("last_over_time(target_info[2m])", "last_over_time(target_info[10s])")
        (dest / path.name).write_text(text)
    return dest


def prometheus_config(rules: Path, targets: dict[str, str], alertmanager: str) -> str:
    """The project's prometheus.yml with loopback targets and 1s intervals."""
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules / "*.yml")]
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager]
    for job in config["scrape_configs"]:
        job["static_configs"][0]["targets"] = [targets[job["job_name"]]]
        if job["job_name"] == "postgres":
            # postgres_exporter takes ~1s to report pg_up 0 (a connect retry); a 1s scrape
            # timeout would turn that into a failed scrape instead.
            job.update(scrape_interval="3s", scrape_timeout="3s")
    return yaml.safe_dump(config)


def alertmanager_config(dest: Path, stand_in_url: str) -> Path:
    """Render the project's config with the real entrypoint, timings shortened."""
    copy = dest / "config"
    shutil.copytree(ALERTMANAGER_DIR, copy)
    cfg = copy / "alertmanager.yml"
    text = cfg.read_text()
    for old, new in (
        ("group_wait: 30s", "group_wait: 1s"),
        ("group_interval: 5m", "group_interval: 2s"),
    ):
        assert old in text
        text = text.replace(old, new)
    cfg.write_text(text)
    token_file = dest / "bot_token"
    token_file.write_text(BOT_TOKEN + "\n")
    rendered = dest / "rendered" / "alertmanager.yml"
    out = subprocess.run(
        ["sh", str(copy / "entrypoint.sh")],
        env={
            "PATH": os.environ["PATH"],
            "TELEGRAM_BOT_TOKEN_FILE": str(token_file),
            "TELEGRAM_CHAT_ID": str(CHAT_ID),
            "TELEGRAM_API_URL": stand_in_url,
            "ALERTMANAGER_CONFIG_OUT": str(rendered),
            "ALERTMANAGER_RENDER_ONLY": "1",
        },
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return rendered


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    workdir: Path
    telegram: TelegramStandIn
    prometheus: servers.Prometheus
    alertmanager: servers.Alertmanager
    collector: servers.ManagedProcess
    redis: servers.Redis
    redis_exporter: servers.ManagedProcess
    postgres: servers.Postgres
    postgres_exporter: servers.ManagedProcess
    workloads: dict[str, servers.ManagedProcess]
    control: Path
    processes: list[servers.ManagedProcess] = field(default_factory=list)

    def fault(self, name: str, on: bool = True) -> None:
        path = self.control / name
        if on:
            path.touch()
        else:
            path.unlink(missing_ok=True)

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = str(at)
        url = f"{self.prometheus.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def query_range(self, expr: str, seconds: int = 120, step: str = "2s") -> list[dict[str, Any]]:
        end = time.time()
        params = {"query": expr, "start": str(end - seconds), "end": str(end), "step": step}
        url = f"{self.prometheus.url}/api/v1/query_range?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def firing(self) -> set[tuple[str, str]]:
        return {
            (r["metric"]["alertname"], r["metric"].get("service", ""))
            for r in self.query('ALERTS{alertstate="firing"}')
        }


def _collector_binary() -> str:
    out = subprocess.run([str(ROOT / "collector" / "build.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"collector/build.sh failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


def _exporter(name: str) -> str:
    path = shutil.which(name) or f"/usr/bin/{name}"
    if not Path(path).exists():
        raise RuntimeError(
            f"{name} is not installed: apt-get install {name} "
            "(scripts/install-system-deps.sh should list it)"
        )
    return path


@contextlib.contextmanager
def start_stack(workdir: Path) -> Iterator[Stack]:
    started: list[servers.ManagedProcess] = []
    postgres: servers.Postgres | None = None
    try:
        telegram = start_telegram_stand_in()
        am_config = alertmanager_config(workdir / "alertmanager", telegram.url)
        alertmanager = servers.start_alertmanager(workdir / "alertmanager", am_config)
        started.append(alertmanager.process)

        redis = servers.start_redis(workdir / "redis")
        started.append(redis.process)
        redis_exporter_port = servers.free_port()
        redis_exporter = servers.ManagedProcess(
            "redis_exporter",
            [
                _exporter("prometheus-redis-exporter"),
                f"--redis.addr=redis://127.0.0.1:{redis.port}",
                f"--web.listen-address=127.0.0.1:{redis_exporter_port}",
            ],
            ready=lambda: servers.http_ok(f"http://127.0.0.1:{redis_exporter_port}/metrics"),
            log_path=workdir / "redis_exporter.log",
        ).start()
        started.append(redis_exporter)

        postgres = servers.start_postgres(workdir / "postgres")
        started.append(postgres.process)
        pg_exporter_port = servers.free_port()
        postgres_exporter = servers.ManagedProcess(
            "postgres_exporter",
            [
                _exporter("prometheus-postgres-exporter"),
                f"--web.listen-address=127.0.0.1:{pg_exporter_port}",
            ],
            ready=lambda: servers.http_ok(f"http://127.0.0.1:{pg_exporter_port}/metrics"),
            log_path=workdir / "postgres_exporter.log",
            env={"DATA_SOURCE_NAME": postgres.dsn + "?sslmode=disable"},
        ).start()
        started.append(postgres_exporter)

        otlp_port, grpc_port, health_port, metrics_port = (servers.free_port() for _ in range(4))
        rules = shortened_rules(workdir / "rules")
        prom_port = servers.free_port()
        prometheus = servers.start_prometheus(
            workdir / "prometheus",
            prometheus_config(
                rules,
                {
                    "prometheus": f"127.0.0.1:{prom_port}",
                    "otel-collector": f"127.0.0.1:{metrics_port}",
                    "redis": f"127.0.0.1:{redis_exporter_port}",
                    "postgres": f"127.0.0.1:{pg_exporter_port}",
                },
                f"127.0.0.1:{alertmanager.port}",
            ),
            port=prom_port,
        )
        started.append(prometheus.process)

        collector = servers.ManagedProcess(
            "collector",
            [_collector_binary(), "--config", str(ROOT / "collector" / "config.yaml")],
            ready=lambda: servers.http_ok(f"http://127.0.0.1:{health_port}/"),
            log_path=workdir / "collector.log",
            env={
                "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{otlp_port}",
                "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
                "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{health_port}",
                "OTELCOL_STORAGE_DIR": str(workdir / "collector-storage"),
                # container logs: an empty directory, never the host's /var/lib/docker
                "OTELCOL_CONTAINER_LOGS": str(workdir / "containers" / "*" / "*-json.log*"),
                # No Loki here (the Logs dashboard's LogQL is checked statically). The logs
                # exporter is pointed at an endpoint that answers 404, a permanent error, so
                # the Collector really fails to send: OtelCollectorExportFailing's fault.
                "LOKI_OTLP_ENDPOINT": f"{prometheus.url}/no-loki-here/otlp",
                "PROMETHEUS_REMOTE_WRITE_ENDPOINT": prometheus.remote_write_url,
                "OTELCOL_METRICS_HOST": "127.0.0.1",
                "OTELCOL_METRICS_PORT": str(metrics_port),
            },
        ).start()
        started.append(collector)

        control = workdir / "control"
        control.mkdir()
        workloads: dict[str, servers.ManagedProcess] = {}
        for role in WORKLOADS:
            http_port = servers.free_port()
            env = {
                "OTEL_METRICS_EXPORTER": "otlp",
                "OTEL_LOGS_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
                "OTEL_METRIC_EXPORT_INTERVAL": "1000",
                "OTEL_ASSIST_ENVIRONMENT": "test",
                "WORKLOAD_HTTP_PORT": str(http_port),
                "PYTHONPATH": str(ROOT),
            }
            if role == "cron":
                # History shipper towards a rest_service that is not running, with a buffer
                # of 5 events and no spool: job events are really dropped and counted.
                env["OTEL_ASSIST_HISTORY_URL"] = f"http://127.0.0.1:{servers.free_port()}"
                env["OTEL_ASSIST_HISTORY_BUFFER_SIZE"] = "5"
                env["OTEL_ASSIST_HISTORY_TIMEOUT_MS"] = "200"
            if role == "assistant":
                # A log queue of 2 records overflows on every burst: the dropped-records
                # counter (and LogRecordsDropped) gets real drops.
                env["OTEL_ASSIST_LOG_QUEUE_SIZE"] = "2"
            proc = servers.ManagedProcess(
                role,
                [sys.executable, "-m", "tests.monitoring.workload", role, str(control)],
                ready=(lambda p=http_port: servers.port_open(p))
                if role == "rest_service"
                else (lambda: True),
                log_path=workdir / f"workload-{role}.log",
                env=env,
            ).start()
            workloads[role] = proc
            started.append(proc)

        yield Stack(
            workdir=workdir,
            telegram=telegram,
            prometheus=prometheus,
            alertmanager=alertmanager,
            collector=collector,
            redis=redis,
            redis_exporter=redis_exporter,
            postgres=postgres,
            postgres_exporter=postgres_exporter,
            workloads=workloads,
            control=control,
            processes=started,
        )
        telegram.server.shutdown()
    finally:
        for proc in reversed(started):
            proc.stop()
        if postgres is not None:
            postgres.stop()  # stopped above; this removes its private directory
