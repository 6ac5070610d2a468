"""W3C trace context from the submitter into the job, its CloudEvents and its log lines."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import pytest
import redis

from tests.integration.conftest import Platform
from tests.integration.test_log_secrets import platform_log_lines
from workers_core.config import Settings
from workers_core.deployments.api import GatewayState, create_api
from workers_core.deployments.completion import CompletionWaiter
from workers_core.jobs.models import JobSubmission
from workers_core.jobs.store import JobStore, NewJob
from workers_core.observability.trace_context import parse_traceparent
from workers_core.tasks.registry import TaskCatalog


def new_traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def job_events(events: list[dict[str, Any]], job_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e["subject"] == job_id]


@pytest.mark.parametrize("value", [
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ",
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later-fields",  # future version
])
def test_valid_traceparents_are_accepted(value: str) -> None:
    parsed = parse_traceparent(value)
    assert parsed is not None and parsed.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert parsed.header.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-")


@pytest.mark.parametrize("value", [
    None, "", "garbage",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # uppercase is invalid
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # v00 has no extras
])
def test_invalid_traceparents_are_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None


async def test_store_keeps_the_traceparent_and_puts_it_on_every_event(store: JobStore) -> None:
    _, traceparent = new_traceparent()
    traced, plain = await store.submit_many([
        NewJob(JobSubmission(task="debug.echo"), queue="debug", max_attempts=3,
               traceparent=traceparent),
        NewJob(JobSubmission(task="debug.echo"), queue="debug", max_attempts=3),
    ])
    await store.ensure_group("debug")
    for entry, job_id in await store.read("debug", "c1", 10, 10):
        delivery = await store.start("debug", "c1", entry, job_id)
        assert delivery is not None
        assert delivery.traceparent == (traceparent if job_id == traced.id else None)
        assert await store.succeed("debug", delivery, {"ok": True})
    assert (await store.get(traced.id)).traceparent == traceparent
    assert (await store.get(plain.id)).traceparent is None
    rows = await store.redis.xrange(store.keys.events)
    events = [json.loads(fields["event"]) for _, fields in rows]
    traced_events = job_events(events, traced.id)
    assert [e["type"] for e in traced_events] == ["job.queued", "job.started", "job.succeeded"]
    assert all(e["traceparent"] == traceparent for e in traced_events)
    assert all("traceparent" not in e for e in job_events(events, plain.id))


async def test_gateway_stores_a_valid_header_and_ignores_an_invalid_one(
    settings: Settings, store: JobStore,
) -> None:
    app = create_api(GatewayState(settings=settings, store=store, catalog=TaskCatalog.discover(),
                                  waiter=CompletionWaiter(store.redis, store.keys.done_channel)))
    _, traceparent = new_traceparent()
    job = {"task": "debug.echo", "payload": {}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gw") as http:
        good = await http.post("/v1/jobs", json=job, headers={"traceparent": traceparent})
        bad = await http.post("/v1/jobs", json=job, headers={"traceparent": "00-xyz-1-01"})
        batch = await http.post("/v1/jobs:batch", json={"jobs": [job, job]},
                                headers={"traceparent": traceparent})
        assert good.status_code == bad.status_code == batch.status_code == 202
        batch_ids = [j["id"] for j in batch.json()["jobs"]]
        got = [(await http.get(f"/v1/jobs/{i}")).json()["traceparent"]
               for i in [good.json()["id"], bad.json()["id"], *batch_ids]]
    assert got == [traceparent, None, traceparent, traceparent]


@pytest.mark.slow
def test_a_jobs_events_and_log_lines_carry_the_submitters_trace(platform: Platform) -> None:
    trace_id, traceparent = new_traceparent()
    job_id = platform.submit("debug.fail", {"retryable": False, "message": "traced"},
                             headers={"traceparent": traceparent})
    job = platform.wait_done(job_id)
    assert job["status"] == "failed" and job["traceparent"] == traceparent
    client: redis.Redis = platform.redis
    rows = client.xrange(f"{platform.settings.redis_prefix}:events")
    events = job_events([json.loads(fields["event"]) for _, fields in rows], job_id)
    assert {e["type"] for e in events} >= {"job.queued", "job.started", "job.failed"}
    assert all(e["traceparent"] == traceparent for e in events)
    records = [json.loads(line[line.index("{"):]) for line in platform_log_lines(job_id)
               if '"job_id"' in line]
    assert any(r["event"] == "job_failed" for r in records), records
    for record in records:
        assert record["trace_id"] == trace_id and record["traceparent"] == traceparent
        assert record["task"] == "debug.fail" and record["attempt"] == 1
