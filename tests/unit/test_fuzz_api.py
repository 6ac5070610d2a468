"""The HTTP API fuzzed from its own OpenAPI spec (schemathesis), in-process over real Redis.

Every operation gets generated valid and invalid requests; the answer must never be a 5xx,
and every 4xx must be an RFC 9457 problem (``application/problem+json`` with a title and a
detail). Run once with auth disabled and once with auth on and an all-scopes token.
Bounded and deterministic: a fixed number of examples per operation, derandomized.

Rerun: ``.venv/bin/pytest tests/unit/test_fuzz_api.py -q`` (``FUZZ_EXAMPLES=100`` for a longer run).
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from workers_core.artifacts.store import artifact_store_from_settings
from workers_core.config import Settings
from workers_core.deployments.api import GatewayState, create_api
from workers_core.deployments.completion import CompletionWaiter
from workers_core.deployments.problems import PROBLEM_JSON
from workers_core.jobs.store import JobStore
from workers_core.local.redis_server import RedisServer
from workers_core.registry.errors import UnknownWorkerTag
from workers_core.registry.models import Heartbeat, TagSummary, WorkerRecord
from workers_core.registry.service import RegistryService
from workers_core.security.scopes import Scope
from workers_core.security.tokens import mint_token
from workers_core.tasks.registry import TaskCatalog

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
FUZZ = hypothesis_settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


class InProcessRegistry:
    """The registry service reached directly (the platform reaches it through a Ray actor)."""

    def __init__(self, service: RegistryService) -> None:
        self.service = service

    async def summaries(self) -> list[TagSummary]:
        return self.service.summaries()

    async def summary(self, tag: str) -> TagSummary:
        found = self.service.summary(tag)
        if found is None:
            raise UnknownWorkerTag(f"no worker is registered under {tag!r}", tag=tag)
        return found

    async def heartbeat(self, tag: str, hb: Heartbeat) -> WorkerRecord:
        return await self.service.heartbeat(tag, hb)

    async def unregister(self, tag: str, replica_id: str | None = None) -> int:
        return len(await self.service.unregister(tag, replica_id))


def _gateway(settings: Settings) -> FastAPI:
    # Built without awaiting anything: the Redis connections are made lazily on
    # schemathesis' own event loop, the one every request of the run is served on.
    store = JobStore.from_settings(settings)
    return create_api(GatewayState(
        settings=settings, store=store, catalog=TaskCatalog.discover(),
        waiter=CompletionWaiter(store.redis, store.keys.done_channel),
        artifacts=artifact_store_from_settings(settings),
        queues=["debug"],
        registry=InProcessRegistry(RegistryService.from_settings(settings, store.redis)),
    ))


def _settings(redis_server: RedisServer, **update: Any) -> Settings:
    prefix = f"fz{uuid.uuid4().hex[:10]}"
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=redis_server.url,
        redis_prefix=prefix,
        registry_namespace=prefix,
        max_wait_s=0.2,  # a long-poll on a generated job id must not hold the run
        artifact_max_bytes=64 * 1024,
        **update,
    )


def _schema(app: FastAPI) -> Any:
    # /v1/events is an endless SSE stream; the long-poll is bounded by max_wait_s above.
    return schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/v1/events")


@pytest.fixture(scope="module")
def open_api(redis_server: RedisServer) -> Any:
    return _schema(_gateway(_settings(redis_server)))


@pytest.fixture(scope="module")
def secret() -> str:
    return secrets.token_urlsafe(48)  # made for this run, never stored


@pytest.fixture(scope="module")
def guarded_api(redis_server: RedisServer, secret: str) -> Any:
    settings = _settings(redis_server, auth_jwt_secret=SecretStr(secret))
    return _schema(_gateway(settings))


@pytest.fixture(scope="module")
def all_scopes(secret: str) -> Iterator[dict[str, str]]:
    token = mint_token(secret, "HS256", "fuzzer", [s.value for s in Scope], 3600)
    yield {"Authorization": f"Bearer {token}"}


def problem_details(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx is ``application/problem+json`` with a non-empty title and detail."""
    if not 400 <= response.status_code < 500:
        return None
    content_type = next((v for k, v in response.headers.items()
                         if k.lower() == "content-type"), [""])[0]
    assert content_type.startswith(PROBLEM_JSON), (
        f"{response.status_code} answered as {content_type!r}: {response.content[:200]!r}")
    body = response.json()
    assert isinstance(body, dict), body
    assert body.get("status") == response.status_code, body
    for name in ("type", "title", "detail"):
        assert isinstance(body.get(name), str) and body[name].strip(), (name, body)
    return None


CHECKS = [not_a_server_error, problem_details]


@dataclass
class FuzzRun:
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def fuzz(schema: Any, headers: dict[str, str] | None = None) -> FuzzRun:
    """Valid and invalid requests for every operation; failures collected, not raised,
    so one run lists all of them."""
    run = FuzzRun()
    for result in schema.get_all_operations():
        operation = result.ok()
        cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                          operation.as_strategy(GenerationMode.NEGATIVE))

        @given(case=cases)
        @FUZZ
        def one(case: Any) -> None:
            run.cases += 1
            if headers:  # on the case itself: call(headers=) loses it on some negative cases
                case.headers = {**(case.headers or {}), **headers}
            try:
                response = case.call_and_validate(checks=CHECKS)
                run.statuses[response.status_code] += 1
            except Exception as exc:  # every failure is reported at the end
                first = str(exc).strip().splitlines()[:6]
                run.failures.append(f"{case.method} {case.formatted_path}: " + " | ".join(first))

        one()
    return run


def _report(name: str, run: FuzzRun) -> None:
    print(f"{name}: {run.cases} cases, statuses {dict(sorted(run.statuses.items()))}, "
          f"{len(run.failures)} failures")


@pytest.mark.slow
def test_no_5xx_and_problem_json_with_auth_disabled(open_api: Any) -> None:
    run = fuzz(open_api)
    _report("auth disabled", run)
    assert run.cases > 0
    assert not run.failures, "\n".join(run.failures)


@pytest.mark.slow
def test_no_5xx_and_problem_json_with_an_all_scopes_token(
    guarded_api: Any, all_scopes: dict[str, str],
) -> None:
    run = fuzz(guarded_api, all_scopes)
    _report("auth on, all scopes", run)
    assert not run.failures, "\n".join(run.failures)
    assert run.statuses[401] == 0, "an all-scopes token was refused"


@pytest.mark.slow
def test_every_protected_operation_answers_401_problem_without_a_token(
    guarded_api: Any,
) -> None:
    run = fuzz(guarded_api)
    _report("auth on, no token", run)
    assert not run.failures, "\n".join(run.failures)
    assert set(run.statuses) <= {200, 401, 503}, run.statuses  # 200/503: health, readiness
    assert run.statuses[401] > 0


# Regressions: the 5xx the fuzzer found, pinned down.

@pytest.mark.parametrize("params", [
    {"cursor": "0-0"},  # Redis refuses "(0-0" as a range bound
    {"cursor": "18446744073709551616-0"},  # past 64 bits
    {"cursor": "1-18446744073709551616"},
    {"since": "1900-01-01T00:00:00Z"},  # before the epoch: a negative stream id
])
async def test_audit_pages_at_the_edges_of_stream_ids_are_answered(
        settings: Settings, store: JobStore, params: dict[str, str]) -> None:
    app = create_api(GatewayState(
        settings=settings, store=store, catalog=TaskCatalog.discover(),
        waiter=CompletionWaiter(store.redis, store.keys.done_channel)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gw") as http:
        resp = await http.get("/v1/audit", params=params)
    assert resp.status_code == 200, resp.text
    assert resp.json()["items"] == []
