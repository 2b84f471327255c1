"""Import paths the docs and examples taught before the layout by concern keep working.

Each line below was in README.md, docs/ or examples/ at the commit before the move
(f87e5f8); a service written against it must not break on upgrade.
"""

from __future__ import annotations

import importlib

import pytest

OLD_PATHS = [
    ("otel_assist.asgi", "instrument_app", "otel_assist.web.asgi"),
    ("otel_assist.asgi", "TelemetryMiddleware", "otel_assist.web.asgi"),
    ("otel_assist.redis_client", "connect", "otel_assist.queues.redis_client"),
    ("otel_assist.redis_client", "connect_sync", "otel_assist.queues.redis_client"),
    ("otel_assist.metrics", "llm_call", "otel_assist.metrics.instruments"),
    ("otel_assist.metrics", "tool_call", "otel_assist.metrics.instruments"),
    ("otel_assist.queues", "QueueProducer", "otel_assist.queues.producer"),
    ("otel_assist.queues", "QueueConsumer", "otel_assist.queues.consumer"),
    ("otel_assist.jobs", "track_scheduler", "otel_assist.jobs.apscheduler"),
    ("otel_assist.jobs", "tracked_job", "otel_assist.jobs.decorator"),
]


@pytest.mark.parametrize(("old", "name", "new"), OLD_PATHS)
def test_old_import_path_gives_the_same_object(old: str, name: str, new: str) -> None:
    assert getattr(importlib.import_module(old), name) is getattr(
        importlib.import_module(new), name
    )


def test_from_otel_assist_import_redis_client_still_works() -> None:
    from otel_assist import correlation_scope, redis_client  # the old queue_worker example

    assert callable(correlation_scope)
    assert (
        redis_client.connect is importlib.import_module("otel_assist.queues.redis_client").connect
    )
