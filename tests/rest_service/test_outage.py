"""Postgres stopped for ~10 s while batches stream into a real uvicorn rest_service.

During the outage every request gets a 503 with a message (never a 500); afterwards the
same process serves again without a restart; re-sending every batch adds no duplicates.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.polling import poll
from tests.rest_service.conftest import TOKEN

pytestmark = pytest.mark.slow


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[servers.Postgres]:
    pg = servers.start_postgres(tmp_path / "pg")
    yield pg
    pg.stop(sig=signal.SIGINT)


@pytest.fixture
def rest_service(own_postgres: servers.Postgres, tmp_path: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "DATABASE_URL": own_postgres.sqlalchemy_url,
        "REST_SERVICE_TOKEN": TOKEN,
        "MIGRATE_ON_START": "true",
        "RETENTION_ENABLED": "false",
        "OTEL_LOGS_EXPORTER": "none",
        "DB_CONNECT_TIMEOUT_SECONDS": "2",
    }
    log_path = tmp_path / "rest_service.log"
    try:
        with servers.serve_rest_service(env, log_path) as url:
            yield url
    finally:
        text = log_path.read_text(errors="replace")
        assert TOKEN not in text and own_postgres.password not in text


def _batch(n: int) -> list[dict[str, object]]:
    return [
        {
            "event_id": uuid.uuid4().hex,
            "queue_name": "to_secretary",
            "direction": "push",
            "message_type": "human",
            "payload": {"i": i},
        }
        for i in range(n)
    ]


OUTAGE_S = 10.0  # several pool reconnect attempts and ~100 rejected batches


def test_postgres_outage_during_batch_ingest(
    rest_service: str, own_postgres: servers.Postgres
) -> None:
    client = httpx.Client(
        base_url=rest_service, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    path = "/api/v1/queue-stats/messages/batch"
    sent: list[list[dict[str, object]]] = []
    statuses: list[tuple[float, int, str]] = []
    outage = {"start": 0.0, "end": 0.0}
    stop = threading.Event()

    def pg_outage() -> None:
        poll(lambda: sum(1 for _, code, _ in statuses if code == 200) >= 10, 30,
             "batches stored before the outage")  # fmt: skip
        outage["start"] = time.monotonic()
        own_postgres.process.stop(sig=signal.SIGINT)  # fast shutdown: sessions are cut
        time.sleep(OUTAGE_S)  # the outage itself: batches keep coming while Postgres is down
        own_postgres.process.start()
        outage["end"] = time.monotonic()

    killer = threading.Thread(target=pg_outage)
    killer.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        batch = _batch(100 if len(sent) % 2 else 20)  # both the COPY and ON CONFLICT paths
        sent.append(batch)
        r = client.post(path, json={"events": batch})
        statuses.append((time.monotonic(), r.status_code, r.text))
        if outage["end"] and time.monotonic() > outage["end"] + 3 and r.status_code == 200:
            break
        time.sleep(0.1)
    killer.join()
    stop.set()

    counts = Counter(code for _, code, _ in statuses)
    assert 500 not in counts and set(counts) <= {200, 503}, counts
    during = [
        (code, text)
        for t, code, text in statuses
        if outage["start"] + 0.5 < t < outage["end"] - 0.5
    ]
    assert during and all(code == 503 for code, _ in during), during[:3]
    assert all("database unavailable" in text for _, text in during)
    assert "password" not in " ".join(text for _, text in during)
    r = client.get("/ready")
    assert r.status_code == 200
    after = [code for t, code, _ in statuses if t > outage["end"] + 3]
    assert after and after[-1] == 200  # same process, no restart

    # the shipper's retry: re-send every batch, including the ones that got a 503
    for batch in sent:
        r = client.post(path, json={"events": batch})
        assert r.status_code == 200, r.text
    total = sum(len(b) for b in sent)
    stored = int(own_postgres.psql("SELECT count(*) FROM queue_message_logs"))
    distinct = int(own_postgres.psql("SELECT count(DISTINCT event_id) FROM queue_message_logs"))
    assert stored == distinct == total
    rolled = int(own_postgres.psql("SELECT sum(count) FROM queue_message_hourly"))
    assert rolled == total
    # and once more: nothing changes
    r = client.post(path, json={"events": sent[0]})
    assert r.json()["inserted"] == 0
