"""The consumer loop against a real Redis, without Ray: retries, dead letters, time limits,
cancellation, shutdown and reclaiming the work of a dead consumer."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from workers_core.actors.consumer import QueueConsumer
from workers_core.config import Settings
from workers_core.jobs.models import Job, JobStatus, JobSubmission
from workers_core.jobs.store import JobStore, NewJob
from workers_core.tasks.registry import QueueSpec, TaskCatalog

Runner = Callable[..., Awaitable[QueueConsumer]]


def debug_spec(settings: Settings, **changes: Any) -> QueueSpec:
    spec = TaskCatalog.discover().queue_spec("debug", settings)
    return dataclasses.replace(spec, **changes)


@pytest.fixture
async def run_consumer(store: JobStore, settings: Settings) -> AsyncIterator[Runner]:
    started: list[tuple[QueueConsumer, asyncio.Task[None]]] = []

    async def start(name: str = "c1", **changes: Any) -> QueueConsumer:
        consumer = QueueConsumer(store, debug_spec(settings, **changes), name)
        await consumer.start()
        started.append((consumer, asyncio.create_task(consumer.run_forever())))
        return consumer

    yield start
    for consumer, loop in started:
        await consumer.stop(grace_s=0)
        loop.cancel()


async def submit(store: JobStore, task: str, payload: dict[str, Any], **kw: Any) -> str:
    max_attempts = kw.pop("max_attempts", 3)
    [s] = await store.submit_many([NewJob(JobSubmission(task=task, payload=payload, **kw),
                                          "debug", max_attempts)])
    return s.id


async def wait_for(store: JobStore, job_id: str, *statuses: JobStatus,
                   timeout_s: float = 15) -> Job:
    deadline = time.monotonic() + timeout_s
    while (job := await store.get(job_id)).status not in statuses:
        assert time.monotonic() < deadline, f"job is {job.status}, wanted {statuses}"
        await asyncio.sleep(0.02)
    return job


async def event_types(store: JobStore, job_id: str) -> list[str]:
    rows = await store.redis.xrange(store.keys.events)
    events = [json.loads(f["event"]) for _, f in rows]
    return [e["type"] for e in events if e["subject"] == job_id]


async def test_a_job_runs_and_its_result_is_stored(store: JobStore, run_consumer: Runner) -> None:
    await run_consumer()
    job_id = await submit(store, "debug.echo", {"message": "salut"})
    job = await wait_for(store, job_id, JobStatus.SUCCEEDED)
    assert job.result == {"message": "salut", "data": {}, "attempt": 1}
    assert await event_types(store, job_id) == ["job.queued", "job.started", "job.succeeded"]
    assert await store.redis.xlen(store.keys.stream("debug")) == 0


async def test_retries_with_backoff_then_succeeds(store: JobStore, run_consumer: Runner) -> None:
    await run_consumer()
    job_id = await submit(store, "debug.fail", {"times": 2})
    job = await wait_for(store, job_id, JobStatus.SUCCEEDED)
    assert job.attempts == 3 and job.result == {"succeeded_on_attempt": 3}
    types = await event_types(store, job_id)
    assert types.count("job.retrying") == 2 and types[-1] == "job.succeeded"


async def test_retries_exhausted_go_to_the_dead_letter_stream(
    store: JobStore, run_consumer: Runner
) -> None:
    await run_consumer()
    job_id = await submit(store, "debug.fail", {"times": None}, max_attempts=2)
    job = await wait_for(store, job_id, JobStatus.DEAD)
    assert job.attempts == 2 and job.error is not None and job.error.type == "Retry"
    [(_, entry)] = await store.redis.xrange(store.keys.dead_letters("debug"))
    assert entry["job"] == job_id and "failed on purpose" in entry["error"]


async def test_non_retryable_error_fails_at_once(store: JobStore, run_consumer: Runner) -> None:
    await run_consumer()
    job_id = await submit(store, "debug.fail", {"times": None, "retryable": False})
    job = await wait_for(store, job_id, JobStatus.FAILED)
    assert job.attempts == 1 and job.error is not None and not job.error.retryable


async def test_invalid_payload_reaching_a_worker_fails_without_retry(
    store: JobStore, run_consumer: Runner
) -> None:
    await run_consumer()
    job_id = await submit(store, "debug.sleep", {"seconds": "soon"})
    job = await wait_for(store, job_id, JobStatus.FAILED)
    assert job.error is not None and "seconds" in job.error.message


async def test_time_limit_is_enforced(store: JobStore, run_consumer: Runner) -> None:
    await run_consumer(time_limit_s=0.2)
    job_id = await submit(store, "debug.sleep", {"seconds": 5}, max_attempts=1)
    job = await wait_for(store, job_id, JobStatus.DEAD)
    assert job.error is not None and job.error.type == "TimeLimitExceeded"


async def test_cancel_stops_a_running_job(store: JobStore, run_consumer: Runner) -> None:
    await run_consumer()
    job_id = await submit(store, "debug.sleep", {"seconds": 30})
    await wait_for(store, job_id, JobStatus.RUNNING)
    assert (await store.cancel(job_id)).cancel_requested
    job = await wait_for(store, job_id, JobStatus.CANCELLED)
    assert job.attempts == 1


async def test_concurrency_caps_jobs_in_flight(store: JobStore, run_consumer: Runner) -> None:
    consumer = await run_consumer(concurrency=2)
    ids = [await submit(store, "debug.sleep", {"seconds": 0.5}) for _ in range(5)]
    await asyncio.sleep(0.3)
    running = [j for j in ids if (await store.get(j)).status is JobStatus.RUNNING]
    assert len(running) == 2 and consumer.stats.in_flight == 2
    for job_id in ids:
        await wait_for(store, job_id, JobStatus.SUCCEEDED)


async def test_work_of_a_stopped_consumer_is_reclaimed_and_succeeds_once(
    store: JobStore, run_consumer: Runner
) -> None:
    first = await run_consumer("first")
    job_id = await submit(store, "debug.sleep", {"seconds": 1})
    await wait_for(store, job_id, JobStatus.RUNNING)
    await first.stop(grace_s=0)  # like a crash: the entry stays pending, unacknowledged
    assert (await store.get(job_id)).status is JobStatus.RUNNING
    await run_consumer("second")  # reclaims after the visibility timeout (2 s here)
    job = await wait_for(store, job_id, JobStatus.SUCCEEDED)
    assert job.attempts == 2
    assert (await event_types(store, job_id)).count("job.succeeded") == 1


async def test_graceful_stop_finishes_in_flight_work(store: JobStore, run_consumer: Runner) -> None:
    consumer = await run_consumer()
    job_id = await submit(store, "debug.sleep", {"seconds": 0.5})
    await wait_for(store, job_id, JobStatus.RUNNING)
    await consumer.stop(grace_s=5)
    assert (await store.get(job_id)).status is JobStatus.SUCCEEDED


async def test_a_long_job_is_not_reclaimed_from_a_live_consumer(
    store: JobStore, run_consumer: Runner
) -> None:
    await run_consumer("a")
    await run_consumer("b")
    job_id = await submit(store, "debug.sleep", {"seconds": 5})  # > visibility timeout (2 s)
    job = await wait_for(store, job_id, JobStatus.SUCCEEDED, timeout_s=20)
    assert job.attempts == 1


async def test_rate_limit_is_shared_through_redis(store: JobStore, settings: Settings) -> None:
    from workers_core.ratelimit import Rate, RedisRateLimiter

    limiter = RedisRateLimiter(store.redis, f"{settings.redis_prefix}:rate:t", Rate.parse("5/s"))
    other = RedisRateLimiter(store.redis, f"{settings.redis_prefix}:rate:t", Rate.parse("5/s"))
    start = time.monotonic()
    for i in range(6):
        await (limiter if i % 2 else other).acquire()
    assert time.monotonic() - start >= 0.9  # 6 calls at 5/s need at least 1 s
