"""Property-based API testing from the service's own OpenAPI schema (schemathesis).

Runs against a real uvicorn rest_service over the real Postgres, with a valid token and
without one. Every response must be non-5xx and match the documented status codes,
content types and schemas. Bounded: a few examples per operation.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests import servers
from tests.rest_service.conftest import TOKEN


@pytest.fixture(scope="module")
def live_service(
    postgres: servers.Postgres,
    redis_server: servers.Redis,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    database_url = postgres.create_database(f"rs_st_{uuid.uuid4().hex[:8]}")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REST_SERVICE_TOKEN": TOKEN,
        "MIGRATE_ON_START": "true",
        "RETENTION_ENABLED": "false",
        "OTEL_LOGS_EXPORTER": "none",
        "MAX_BATCH_EVENTS": "50",
        "REDIS_URL": redis_server.url,
        # The fuzzer sends hundreds of wrong tokens from one address, which the failed-auth
        # limit answers with 429 (tests/rest_service/test_auth_limits.py covers that).
        "AUTH_FAILURE_LIMIT": "0",
    }
    log_path = tmp_path_factory.mktemp("st") / "rest_service.log"
    with servers.serve_rest_service(env, log_path) as url:
        yield url


def _operations(url: str) -> list[Any]:
    loaded = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in loaded.get_all_operations()]


def _fuzz(url: str, headers: dict[str, str], mode: GenerationMode, no_token: bool) -> None:
    """Each operation: MAX_EXAMPLES generated cases, all checks on every response."""
    operations = _operations(url)
    assert len(operations) >= 15
    seen: Counter[int] = Counter()
    unsatisfiable: list[str] = []
    for operation in operations:
        # The headers go into generation: a negative case whose only mutation was a missing
        # Authorization header would otherwise be "accepted" once call_and_validate adds it.
        @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            # JSON Schema cannot say "between 2000-01-01 and now + MAX_CLOCK_SKEW_SECONDS"
            # (issue 10), so a generated date-time may be refused: a POST's schema-valid
            # body may get 422, but only for a timestamp out of range (checked below).
            bounded = mode is GenerationMode.POSITIVE and case.method == "POST"
            response = case.call_and_validate(
                headers=headers,
                timeout=30,
                excluded_checks=[positive_data_acceptance] if bounded else None,
            )
            if bounded and response.status_code == 422:
                detail = response.json()["detail"]
                # ... or for a correlation id made only of dots (the schema states the
                # charset; "not only dots" is the one part of the rule it does not)
                assert all(
                    "timestamp out of range" in e["msg"] or "(not only dots)" in e["msg"]
                    for e in detail
                ), (detail, case.body)
            seen[response.status_code] += 1
            assert response.status_code < 500 or response.status_code == 503
            if no_token and case.path not in ("/health", "/ready", "/openapi.json"):
                assert response.status_code in (400, 401, 404, 405, 413, 422), (
                    case.method,
                    case.path,
                    response.status_code,
                )

        try:
            check()
        except Unsatisfiable:
            # negative mode cannot break an operation that takes no input (GET /health)
            assert mode is GenerationMode.NEGATIVE
            unsatisfiable.append(f"{operation.method} {operation.path}")
    assert len(unsatisfiable) <= 5, unsatisfiable
    assert seen, "nothing was generated"
    if not no_token and mode is GenerationMode.POSITIVE:
        assert seen[200] + seen[201] + seen[204] > 0, seen


MAX_EXAMPLES = 10
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_with_token(live_service: str, mode: GenerationMode) -> None:
    _fuzz(live_service, AUTH, mode, no_token=False)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_without_token(live_service: str, mode: GenerationMode) -> None:
    _fuzz(live_service, {"Authorization": "Bearer not-the-token"}, mode, no_token=True)
