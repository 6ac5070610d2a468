"""Pool controls against a real Redis: draining consumers, operator targets within bounds,
the routes under auth (scope, audit), and the ops page's headers."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from ray.serve._private.common import DeploymentID, TimeStampedValue
from ray.serve.config import AutoscalingConfig, AutoscalingContext

from workers_core.actors.consumer import QueueConsumer
from workers_core.actors.scaling import (
    BACKLOG_METRIC,
    OPERATOR_TARGET_METRIC,
    BacklogPolicy,
    autoscaling_metrics,
)
from workers_core.config import QueueOverrides, Settings
from workers_core.deployments.api import GatewayState, create_api
from workers_core.deployments.completion import CompletionWaiter
from workers_core.errors import InvalidPayload
from workers_core.jobs.models import JobStatus, JobSubmission
from workers_core.jobs.pool_controls import PoolControls, PoolNotScalable, ReplicaBounds
from workers_core.jobs.store import JobStore, NewJob
from workers_core.ops.page import CONTENT_SECURITY_POLICY
from workers_core.security.tokens import mint_token
from workers_core.tasks.registry import TaskCatalog

AUTOSCALED = ReplicaBounds(low=1, high=4, autoscaled=True)


async def submit(store: JobStore, task: str = "debug.echo", **payload: Any) -> str:
    [s] = await store.submit_many([NewJob(JobSubmission(task=task, payload=payload), "debug", 3)])
    return s.id


@pytest.fixture
async def consumer(store: JobStore, settings: Settings) -> AsyncIterator[QueueConsumer]:
    spec = TaskCatalog.discover().queue_spec("debug", settings)
    c = QueueConsumer(store, dataclasses.replace(spec, concurrency=4), "c1")
    await c.start()
    yield c
    await c.stop(grace_s=0)


@pytest.fixture
def controls(store: JobStore) -> PoolControls:
    return PoolControls(store.redis, store.keys)


async def test_a_draining_consumer_takes_nothing_and_resume_restores_it(
    store: JobStore, consumer: QueueConsumer, controls: PoolControls,
) -> None:
    await controls.drain("debug")
    job_id = await submit(store)
    assert await consumer.step() == 0
    assert (await store.get(job_id)).status is JobStatus.QUEUED
    [stats] = await store.queue_stats(["debug"])
    assert stats.draining and stats.lag == 1
    await controls.resume("debug")
    assert await consumer.step() == 1
    [stats] = await store.queue_stats(["debug"])
    assert not stats.draining


async def test_jobs_in_flight_when_draining_starts_still_finish(
    store: JobStore, consumer: QueueConsumer, controls: PoolControls,
) -> None:
    job_id = await submit(store, "debug.sleep", seconds=0.3)
    assert await consumer.step() == 1
    await controls.drain("debug")
    deadline = time.monotonic() + 15
    while (job := await store.get(job_id)).status is not JobStatus.SUCCEEDED:
        assert time.monotonic() < deadline, job.status
        assert await consumer.step() == 0
    assert await controls.is_draining("debug")


async def test_draining_one_queue_leaves_the_others_alone(
    store: JobStore, consumer: QueueConsumer, controls: PoolControls,
) -> None:
    await controls.drain("ocr")
    await submit(store)
    assert await consumer.step() == 1


async def test_a_target_within_bounds_is_stored_and_cleared(
    store: JobStore, controls: PoolControls,
) -> None:
    await controls.set_target("debug", 3, AUTOSCALED)
    [stats] = await store.queue_stats(["debug"])
    assert stats.operator_target == 3
    await controls.set_target("debug", None, AUTOSCALED)
    [stats] = await store.queue_stats(["debug"])
    assert stats.operator_target is None


@pytest.mark.parametrize("replicas", [0, 5, 100])
async def test_a_target_outside_the_bounds_is_refused_naming_them(
    store: JobStore, controls: PoolControls, replicas: int,
) -> None:
    with pytest.raises(InvalidPayload) as caught:
        await controls.set_target("debug", replicas, AUTOSCALED)
    assert caught.value.detail["errors"][0]["field"] == "replicas"
    assert "min_replicas (1)" in caught.value.message
    assert "max_replicas (4)" in caught.value.message
    [stats] = await store.queue_stats(["debug"])
    assert stats.operator_target is None


async def test_a_fixed_pool_cannot_be_scaled(controls: PoolControls) -> None:
    with pytest.raises(PoolNotScalable, match="fixed replica count"):
        await controls.set_target("debug", 2, ReplicaBounds(2, 2, autoscaled=False))


def test_bounds_come_from_the_queue_settings() -> None:
    catalog = TaskCatalog.discover()
    settings = Settings(_env_file=None, queues={  # type: ignore[call-arg]
        "debug": QueueOverrides(min_replicas=1, max_replicas=5),
        "ocr": QueueOverrides(replicas=3)})
    assert ReplicaBounds.of(catalog.queue_spec("debug", settings)) == ReplicaBounds(1, 5, True)
    assert ReplicaBounds.of(catalog.queue_spec("ocr", settings)) == ReplicaBounds(3, 3, False)


async def test_replicas_report_the_operator_target_with_the_backlog(
    store: JobStore, controls: PoolControls,
) -> None:
    await store.ensure_group("debug")
    await submit(store)
    assert await autoscaling_metrics(store, "debug") == {BACKLOG_METRIC: 1.0,
                                                         OPERATOR_TARGET_METRIC: 0.0}
    await controls.set_target("debug", 4, AUTOSCALED)
    assert (await autoscaling_metrics(store, "debug"))[OPERATOR_TARGET_METRIC] == 4.0


def context(raw: dict[str, Any], now: float, low: int = 1, high: int = 4) -> AutoscalingContext:
    return AutoscalingContext(
        deployment_id=DeploymentID(name="Pool_debug", app_name="workers"),
        deployment_name="Pool_debug", app_name="workers",
        current_num_replicas=1, target_num_replicas=1, running_replicas=[],
        total_num_requests=0.0, total_queued_requests=0.0,
        aggregated_metrics=None, raw_metrics=raw,
        capacity_adjusted_min_replicas=low, capacity_adjusted_max_replicas=high,
        policy_state={}, last_scale_up_time=None, last_scale_down_time=None,
        current_time=now, config=AutoscalingConfig(min_replicas=low, max_replicas=high),
    )


def reported(now: float, backlog: float, target: float) -> dict[str, Any]:
    return {BACKLOG_METRIC: {"r1": [TimeStampedValue(timestamp=now - 1, value=backlog)]},
            OPERATOR_TARGET_METRIC: {"r1": [TimeStampedValue(timestamp=now - 1, value=target)]}}


def test_the_policy_follows_the_operator_target_within_capacity_bounds() -> None:
    now = time.time()
    policy = BacklogPolicy(target_backlog=10)
    assert policy(context(reported(now, backlog=0, target=3), now))[0] == 3
    assert policy(context(reported(now, backlog=500, target=2), now))[0] == 2
    # Serve's capacity bounds (a rollout) still narrow what it asks for.
    assert policy(context(reported(now, backlog=0, target=4), now, high=2))[0] == 2
    # No target (0): the backlog rule again.
    assert policy(context(reported(now, backlog=25, target=0), now))[0] == 3


# -- the routes, through the ASGI app with auth on -----------------------------------------


@pytest.fixture
def secret() -> str:
    return secrets.token_urlsafe(48)  # made for this test, never stored


@pytest.fixture
def app(settings: Settings, store: JobStore, secret: str) -> FastAPI:
    auth_on = settings.model_copy(update={
        "auth_jwt_secret": SecretStr(secret),
        "queues": {"debug": QueueOverrides(min_replicas=1, max_replicas=3),
                   "ocr": QueueOverrides(replicas=2)}})
    catalog = TaskCatalog.discover()
    return create_api(GatewayState(
        settings=auth_on, store=store, catalog=catalog, queues=catalog.queues(),
        waiter=CompletionWaiter(store.redis, store.keys.done_channel)))


def client(app: FastAPI, secret: str | None = None, *scopes: str) -> httpx.AsyncClient:
    headers = ({"Authorization": f"Bearer {mint_token(secret, 'HS256', 'ana', list(scopes), 300)}"}
               if secret else {})
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw",
                             headers=headers)


ACTIONS = [("/v1/queues/debug:drain", None), ("/v1/queues/debug:resume", None),
           ("/v1/queues/debug:scale", {"replicas": 2})]


@pytest.mark.parametrize(("path", "body"), ACTIONS)
async def test_pool_actions_need_ops_admin(app: FastAPI, secret: str, path: str,
                                           body: dict[str, Any] | None) -> None:
    async with client(app, secret, "jobs:read", "jobs:write", "workers:admin") as http:
        resp = await http.post(path, json=body)
    assert resp.status_code == 403
    assert resp.json()["required_scope"] == "ops:admin"
    async with client(app) as http:
        assert (await http.post(path, json=body)).status_code == 401


async def test_drain_and_resume_show_in_the_queue_list_and_the_audit_log(
    app: FastAPI, secret: str,
) -> None:
    async with client(app, secret, "ops:admin", "jobs:read") as http:
        drained = await http.post("/v1/queues/debug:drain")
        assert drained.status_code == 200 and drained.json()["draining"] is True
        listed = {q["queue"]: q for q in (await http.get("/v1/queues")).json()}
        assert listed["debug"]["draining"] is True
        assert (listed["debug"]["min_replicas"], listed["debug"]["max_replicas"]) == (1, 3)
        assert (await http.post("/v1/queues/debug:resume")).json()["draining"] is False
        audit = (await http.get("/v1/audit", params={"action": ":drain"})).json()["items"]
    assert [(a["actor"], a["action"], a["status"]) for a in audit] == [
        ("ana", "POST /v1/queues/{queue}:drain", 200)]


async def test_scale_answers_422_naming_the_bounds_and_409_for_a_fixed_pool(
    app: FastAPI, secret: str,
) -> None:
    async with client(app, secret, "ops:admin") as http:
        ok = await http.post("/v1/queues/debug:scale", json={"replicas": 3})
        too_many = await http.post("/v1/queues/debug:scale", json={"replicas": 4})
        zero = await http.post("/v1/queues/debug:scale", json={"replicas": 0})
        fixed = await http.post("/v1/queues/ocr:scale", json={"replicas": 3})
        unknown = await http.post("/v1/queues/nope:drain")
        cleared = await http.post("/v1/queues/debug:scale", json={"replicas": None})
    assert ok.status_code == 200 and ok.json()["operator_target"] == 3
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "replicas"
    assert (too_many.json()["min_replicas"], too_many.json()["max_replicas"]) == (1, 3)
    assert zero.status_code == 422 and zero.json()["errors"][0]["field"] == "replicas"
    assert fixed.status_code == 409 and fixed.json()["replicas"] == 2
    assert unknown.status_code == 404
    assert cleared.status_code == 200 and cleared.json()["operator_target"] is None


async def test_the_ops_page_is_public_with_a_strict_csp(app: FastAPI) -> None:
    async with client(app) as http:
        page = await http.get("/ops")
        script = await http.get("/ops/static/ops.js")
        other = await http.get("/ops/static/../config.py")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "<script>" not in page.text  # no inline script: only <script src=...>
    assert script.status_code == 200 and "innerHTML" not in script.text
    assert other.status_code in (401, 404)

