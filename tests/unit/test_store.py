"""The Redis store's transitions, against a real redis-server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from workers_core.clock import ManualClock
from workers_core.config import Settings
from workers_core.errors import IdempotencyConflict, JobNotFound, JobStateConflict
from workers_core.jobs.models import JobError, JobStatus, JobSubmission
from workers_core.jobs.store import JobStore, NewJob


def new(task: str = "debug.echo", idem: str | None = None, **kw: object) -> NewJob:
    payload = kw.pop("payload", {"message": "hi"})
    return NewJob(
        JobSubmission(task=task, payload=payload, **kw),  # type: ignore[arg-type]
        queue="debug", max_attempts=3, idempotency_key=idem,
    )


async def events(store: JobStore) -> list[dict[str, object]]:
    rows = await store.redis.xrange(store.keys.events)
    return [json.loads(fields["event"]) for _, fields in rows]


async def test_submit_stores_the_job_enqueues_it_and_emits_a_cloudevent(store: JobStore) -> None:
    [sub] = await store.submit_many([new(correlation_id="order-7")])
    job = await store.get(sub.id)
    assert job.status is JobStatus.QUEUED and job.payload == {"message": "hi"}
    assert await store.redis.xlen(store.keys.stream("debug")) == 1
    [event] = await events(store)
    assert event["type"] == "job.queued" and event["specversion"] == "1.0"
    assert event["data"]["job_id"] == sub.id  # type: ignore[index]
    assert event["data"]["correlation_id"] == "order-7"  # type: ignore[index]


async def test_same_idempotency_key_returns_the_same_job(store: JobStore) -> None:
    [a] = await store.submit_many([new(idem="k1")])
    [b] = await store.submit_many([new(idem="k1")])
    assert b.id == a.id and b.duplicate and not a.duplicate
    assert await store.redis.xlen(store.keys.stream("debug")) == 1


async def test_idempotency_key_reused_for_another_payload_is_a_conflict(store: JobStore) -> None:
    await store.submit_many([new(idem="k2")])
    with pytest.raises(IdempotencyConflict):
        await store.submit_many([new(idem="k2", payload={"message": "other"})])


async def test_a_batch_is_one_script_call(store: JobStore) -> None:
    before = (await store.redis.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
    subs = await store.submit_many([new() for _ in range(200)])
    after = (await store.redis.info("commandstats"))["cmdstat_evalsha"]["calls"]
    assert len({s.id for s in subs}) == 200
    assert after - before == 1
    assert await store.redis.xlen(store.keys.stream("debug")) == 200


async def test_not_before_waits_in_the_delayed_set_until_due(settings: Settings) -> None:
    clock = ManualClock(start=datetime.now(UTC).timestamp())
    store = JobStore.from_settings(settings, clock)
    due = datetime.fromtimestamp(clock.now(), UTC) + timedelta(seconds=60)
    [sub] = await store.submit_many([new(not_before=due)])
    assert (await store.get(sub.id)).status is JobStatus.SCHEDULED
    assert await store.promote_due("debug") == 0
    clock.advance(61)
    assert await store.promote_due("debug") == 1
    assert (await store.get(sub.id)).status is JobStatus.QUEUED
    assert await store.redis.xlen(store.keys.stream("debug")) == 1
    await store.close()


async def test_cancel_of_a_queued_job_removes_it_from_the_stream(store: JobStore) -> None:
    [sub] = await store.submit_many([new()])
    job = await store.cancel(sub.id)
    assert job.status is JobStatus.CANCELLED
    assert await store.redis.xlen(store.keys.stream("debug")) == 0
    with pytest.raises(JobStateConflict):
        await store.cancel(sub.id)


async def test_unknown_job_is_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFound):
        await store.get("nope")


async def test_outcome_of_a_superseded_delivery_is_ignored_and_not_acked(
    store: JobStore,
) -> None:
    await store.ensure_group("debug")
    [sub] = await store.submit_many([new()])
    [(entry, job_id)] = await store.read("debug", "a", 10, 10)
    first = await store.start("debug", "a", entry, job_id)
    # Consumer a looks dead; b reclaims the entry and starts attempt 2.
    [(entry_b, _)] = await store.reclaim("debug", "b", 0, 10)
    second = await store.start("debug", "b", entry_b, job_id)
    assert first and second and (first.attempt, second.attempt) == (1, 2)
    assert not await store.succeed("debug", first, {"v": 1})
    pending = await store.redis.xpending(store.keys.stream("debug"), "workers")
    assert pending["pending"] == 1  # a's late answer did not ack b's entry
    assert await store.succeed("debug", second, {"v": 2})
    job = await store.get(sub.id)
    assert job.status is JobStatus.SUCCEEDED and job.result == {"v": 2}
    assert await store.redis.xlen(store.keys.stream("debug")) == 0


async def test_dead_letter_then_manual_retry_grants_the_attempt_budget_again(
    store: JobStore,
) -> None:
    await store.ensure_group("debug")
    [sub] = await store.submit_many([new()])
    [(entry, job_id)] = await store.read("debug", "a", 10, 10)
    d = await store.start("debug", "a", entry, job_id)
    assert d is not None
    err = JobError(type="Boom", message="boom", retryable=True, attempt=1)
    assert await store.fail("debug", d, err, JobStatus.DEAD)
    assert await store.redis.xlen(store.keys.dead_letters("debug")) == 1
    job = await store.requeue(sub.id)
    assert job.status is JobStatus.QUEUED and (job.attempts, job.max_attempts) == (1, 4)
    assert await store.redis.xlen(store.keys.dead_letters("debug")) == 0
    assert await store.redis.ttl(store.keys.job(sub.id)) == -1


async def test_retry_of_a_queued_job_is_a_conflict(store: JobStore) -> None:
    [sub] = await store.submit_many([new()])
    with pytest.raises(JobStateConflict):
        await store.requeue(sub.id)


async def test_listing_is_newest_first_filtered_and_paginated(store: JobStore) -> None:
    subs = await store.submit_many([new() for _ in range(5)])
    subs += await store.submit_many([new(task="debug.sleep", payload={"seconds": 1})])
    page = await store.list_jobs(task="debug.echo", limit=3)
    assert [j.id for j in page.items] == [s.id for s in subs[4:1:-1]]
    rest = await store.list_jobs(task="debug.echo", limit=3, cursor=page.next_cursor)
    assert [j.id for j in rest.items] == [s.id for s in subs[1::-1]]
    queued = await store.list_jobs(status=JobStatus.QUEUED, limit=100)
    assert len(queued.items) == 6


async def test_queue_stats_count_waiting_pending_delayed_and_dead(store: JobStore) -> None:
    await store.ensure_group("debug")
    later = datetime.now(UTC) + timedelta(hours=1)
    await store.submit_many([new() for _ in range(3)] + [new(not_before=later)])
    await store.read("debug", "a", 1, 10)
    await store.heartbeat("debug", "a")
    [stats] = await store.queue_stats(["debug"])
    assert (stats.length, stats.pending, stats.lag, stats.delayed, stats.dead_lettered,
            stats.replicas) == (3, 1, 2, 1, 0, 1)
