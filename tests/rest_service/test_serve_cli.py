"""`rest-service serve` as a newcomer meets it: its help, what it prints, its first pages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests import servers
from tests.polling import poll


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "REST_SERVICE_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        REST_SERVICE_TOKEN="serve-cli-token-0123456789abcdef",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{servers.free_port()}",
        OTEL_ASSIST_LOG_FORMAT="json",
    )
    return env


def test_help_shows_defaults_and_descriptions_without_markup(tmp_path: Path) -> None:
    for argv in (["--help"], ["serve", "--help"], ["migrate", "--help"]):
        run = subprocess.run(
            [sys.executable, "-m", "rest_service.cli", *argv],
            capture_output=True,
            text=True,
            env=_env(tmp_path),
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        assert "``" not in run.stdout and ":class:" not in run.stdout, run.stdout
    serve_help = subprocess.run(
        [sys.executable, "-m", "rest_service.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=60,
    ).stdout
    for option, default in (("--host", "127.0.0.1"), ("--port", "8000"), ("--workers", "1")):
        assert option in serve_help and f"(default: {default})" in serve_help, serve_help
    assert "address to listen on" in serve_help
    top = subprocess.run(
        [sys.executable, "-m", "otel_assist_demo.cli", "--help"], capture_output=True, text=True
    ).stdout
    assert "demo" in top and "``" not in top


def test_serve_prints_its_address_and_quiet_consistent_json(tmp_path: Path) -> None:
    port = servers.free_port()
    out = tmp_path / "serve.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rest_service.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=_env(tmp_path),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: servers.http_ok(f"{base}/ready"), 60, "rest-service ready")
        # GET / leads to the admin pages
        no_redirect = urllib.request.build_opener(_NoRedirect)
        try:
            no_redirect.open(f"{base}/", timeout=5)
            raise AssertionError("GET / did not redirect")
        except urllib.error.HTTPError as exc:
            assert exc.code in (302, 303, 307) and exc.headers["Location"] == "/admin"
        # an unknown admin path is a styled page, like every other admin error
        try:
            urllib.request.urlopen(f"{base}/admin/nonexistent", timeout=5)
            raise AssertionError("no 404")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
            assert exc.headers["Content-Type"].startswith("text/html")
            page = exc.read().decode()
            assert "Not found" in page and "stylesheet" in page and '"detail"' not in page
        poll(lambda: b"retention pass" in out.read_bytes(), 30, "retention line")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    lines = out.read_text().splitlines()
    assert lines[0] == (
        f"rest-service: listening on {base} (admin {base}/admin, API docs {base}/docs)"
    ), lines[:3]
    assert not [ln for ln in lines if "setup plugin" in ln], "alembic plugin noise"
    records = [ln for ln in lines if ln.startswith("{")]
    assert any('"retention pass"' in ln for ln in records)
    for line in records:
        json.loads(line)
        # one JSON style for every line: compact, as orjson writes it
        assert '": ' not in line and '", "' not in line, line


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None
