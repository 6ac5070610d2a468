"""The Redis job store: ledger (job hashes, indexes, idempotency), queue streams, delayed
sets, dead letters and lifecycle events. The only module that talks to Redis about jobs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from workers_core.clock import Clock, SystemClock
from workers_core.config import Settings
from workers_core.errors import (
    IdempotencyConflict,
    JobNotFound,
    JobStateConflict,
    StoreUnavailable,
)
from workers_core.jobs import scripts
from workers_core.jobs.keys import (
    CONSUMER_GROUP,
    POOL_DRAINING,
    POOL_TARGET_REPLICAS,
    RedisKeys,
)
from workers_core.jobs.models import (
    FollowUp,
    Job,
    JobError,
    JobPage,
    JobProgress,
    JobStatus,
    JobSubmission,
    QueueStats,
    new_job_id,
)
from workers_core.observability import metrics

UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.TryAgainError,
    ConnectionError,
    OSError,
)


@asynccontextmanager
async def redis_errors_as_503() -> AsyncIterator[None]:
    """Redis away (unreachable, loading its data) becomes ``StoreUnavailable``: a 503 with
    Retry-After, for every module that talks to Redis on a request's behalf."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"Redis is unreachable: {type(exc).__name__}") from exc
    except redis_errors.ResponseError as exc:
        if "LOADING" in str(exc) or "MASTERDOWN" in str(exc):
            raise StoreUnavailable("Redis is loading its data") from exc
        raise


@dataclass(frozen=True)
class NewJob:
    """A submission resolved against its task type: ready to store."""

    submission: JobSubmission
    queue: str
    max_attempts: int
    idempotency_key: str | None = None
    parent_id: str | None = None
    traceparent: str | None = None  # W3C trace context of the submitter (validated)


@dataclass(frozen=True)
class Submitted:
    id: str
    duplicate: bool


@dataclass(frozen=True)
class Delivery:
    """A job handed to a consumer: the stream entry it came in and the attempt it is."""

    job_id: str
    entry: str
    attempt: int
    task: str
    payload: dict[str, Any]
    max_attempts: int
    correlation_id: str | None
    then: list[FollowUp] = field(default_factory=list)
    traceparent: str | None = None


def fingerprint(sub: JobSubmission) -> str:
    """What makes two submissions with one Idempotency-Key 'the same request'."""
    parts: list[Any] = [sub.task, sub.payload]
    if sub.then:  # a different chain is a different request
        parts.append([f.model_dump(mode="json") for f in sub.then])
    body = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def _encode(job: NewJob, now: float) -> dict[str, Any]:
    """A job as the SUBMIT_FN Lua function takes it."""
    sub = job.submission
    fields = {
        "id": new_job_id(now),
        "task": sub.task,
        "queue": job.queue,
        "payload": json.dumps(sub.payload, separators=(",", ":")),
        "attempts": "0",
        "max_attempts": str(job.max_attempts),
        "attempt_budget": str(job.max_attempts),
        "created_at": repr(now),
        "correlation_id": sub.correlation_id or "",
        "idempotency_key": job.idempotency_key or "",
    }
    if sub.then:
        fields["then"] = json.dumps([f.model_dump(mode="json", exclude_none=True)
                                     for f in sub.then], separators=(",", ":"))
    if job.parent_id:
        fields["parent_id"] = job.parent_id
    if job.traceparent:
        fields["traceparent"] = job.traceparent
    due = ""
    if sub.not_before is not None:
        due = repr(sub.not_before.timestamp())
        fields["not_before"] = due
    return {"fields": fields, "idem": job.idempotency_key or "", "fp": fingerprint(sub),
            "due": due}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class JobStore:
    """Async access to jobs in Redis; Redis errors become ``StoreUnavailable``."""

    def __init__(
        self, redis: aioredis.Redis, settings: Settings, clock: Clock | None = None
    ) -> None:
        # redis-py's types assume bytes replies; with decode_responses=True they are str.
        self.redis: Any = redis
        self.settings = settings
        self.keys = RedisKeys(settings.redis_prefix)
        self.clock = clock or SystemClock()
        self._scripts = {
            name: redis.register_script(getattr(scripts, name))
            for name in ("SUBMIT", "START", "SUCCEED", "RETRY_LATER", "FAIL", "PROMOTE",
                         "CANCEL", "REQUEUE")
        }

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock | None = None) -> JobStore:
        client = aioredis.from_url(settings.redis_url, **settings.redis_kwargs())
        return cls(client, settings, clock)

    async def close(self) -> None:
        await self.redis.aclose()

    async def _run(self, name: str, *args: Any) -> Any:
        now = self.clock.now()
        argv = [self.keys.prefix, repr(now), _iso(now), self.settings.events_maxlen, *args]
        async with redis_errors_as_503():
            return await self._scripts[name](keys=[], args=argv)

    # -- submission -----------------------------------------------------------------------

    async def submit_many(self, jobs: Sequence[NewJob]) -> list[Submitted]:
        """Store jobs and enqueue them in one round trip (one Lua call)."""
        now = self.clock.now()
        encoded = [_encode(job, now) for job in jobs]
        raw = await self._run("SUBMIT", self.settings.idempotency_ttl_s, json.dumps(encoded))
        out: list[Submitted] = []
        for verdict, job_id, job in zip(raw[::2], raw[1::2], jobs, strict=True):
            if verdict == "conflict":
                raise IdempotencyConflict(
                    f"Idempotency-Key {job.idempotency_key!r} was used for a different "
                    f"request (job {job_id})",
                    job_id=job_id,
                )
            out.append(Submitted(id=job_id, duplicate=verdict == "dup"))
            if verdict == "new":
                metrics.job_submitted(job.submission.task, job.queue)
        return out

    # -- reading --------------------------------------------------------------------------

    async def get(self, job_id: str, *, with_progress: bool = False) -> Job:
        """The job; ``with_progress`` also reads its last progress report, in the same
        round trip (``GET /v1/jobs/{id}``)."""
        async with redis_errors_as_503():
            if with_progress:
                pipe = self.redis.pipeline(transaction=False)
                pipe.hgetall(self.keys.job(job_id))
                pipe.hgetall(self.keys.progress(job_id))
                fields, progress = await pipe.execute()
            else:
                fields, progress = await self.redis.hgetall(self.keys.job(job_id)), None
        if not fields:
            raise JobNotFound(f"no job {job_id!r} (unknown, or its result expired)")
        job = Job.from_hash(fields)
        if progress is not None:
            job.progress = JobProgress.from_hash(progress)
        return job

    async def list_jobs(
        self,
        task: str | None = None,
        status: JobStatus | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> JobPage:
        """Newest first. The narrowest index is walked; the other filter is applied on read."""
        if status is not None:
            index = self.keys.index("status", status.value)
        elif task is not None:
            index = self.keys.index("task", task)
        else:
            index = self.keys.index()
        items: list[Job] = []
        upper = f"({cursor}" if cursor else "+"
        async with redis_errors_as_503():
            for _ in range(10):  # bound the work one page may cost
                ids = await self.redis.zrange(
                    index, upper, "-", desc=True, bylex=True, offset=0, num=limit
                )
                if not ids:
                    return JobPage(items=items, next_cursor=None)
                pipe = self.redis.pipeline(transaction=False)
                for job_id in ids:
                    pipe.hgetall(self.keys.job(job_id))
                rows = await pipe.execute()
                expired = [i for i, row in zip(ids, rows, strict=True) if not row]
                if expired:
                    await self.redis.zrem(index, *expired)
                for row in rows:
                    if row and (task is None or row["task"] == task):
                        items.append(Job.from_hash(row))
                        if len(items) == limit:
                            return JobPage(items=items, next_cursor=items[-1].id)
                upper = f"({ids[-1]}"
        return JobPage(items=items, next_cursor=upper[1:])

    # -- operator actions -----------------------------------------------------------------

    async def cancel(self, job_id: str) -> Job:
        verdict = await self._run("CANCEL", job_id, self.settings.result_ttl_s)
        if verdict[0] == "missing":
            raise JobNotFound(f"no job {job_id!r}")
        if verdict[0] == "terminal":
            raise JobStateConflict(f"job {job_id} is already {verdict[1]}", status=verdict[1])
        return await self.get(job_id)

    async def requeue(self, job_id: str) -> Job:
        """Manual retry of a failed or dead-lettered job: its attempt budget is granted again
        (``max_attempts`` grows by the original allowance; ``attempts`` keeps counting)."""
        verdict = await self._run("REQUEUE", job_id)
        if verdict[0] == "missing":
            raise JobNotFound(f"no job {job_id!r}")
        if verdict[0] == "conflict":
            raise JobStateConflict(
                f"only failed or dead jobs can be retried; job {job_id} is {verdict[1]}",
                status=verdict[1],
            )
        flat = verdict[1]
        return Job.from_hash(dict(zip(flat[::2], flat[1::2], strict=True)))

    # -- consumer side --------------------------------------------------------------------

    async def ensure_group(self, queue: str) -> None:
        async with redis_errors_as_503():
            try:
                await self.redis.xgroup_create(
                    self.keys.stream(queue), CONSUMER_GROUP, id="0", mkstream=True
                )
            except redis_errors.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read(
        self, queue: str, consumer: str, count: int, block_ms: int
    ) -> list[tuple[str, str]]:
        """New entries for this consumer, as ``(entry_id, job_id)``."""
        async with redis_errors_as_503():
            reply = await self.redis.xreadgroup(
                CONSUMER_GROUP, consumer, {self.keys.stream(queue): ">"}, count=count,
                block=block_ms,
            )
        return [(entry, fields["job"]) for _, entries in reply for entry, fields in entries
                if fields]

    async def reclaim(
        self, queue: str, consumer: str, min_idle_s: float, count: int
    ) -> list[tuple[str, str]]:
        """Take over entries that a dead (or stalled) consumer left pending too long."""
        async with redis_errors_as_503():
            reply = await self.redis.xautoclaim(
                self.keys.stream(queue), CONSUMER_GROUP, consumer,
                min_idle_time=int(min_idle_s * 1000), start_id="0-0", count=count,
            )
        entries = reply[1]
        return [(entry, fields["job"]) for entry, fields in entries if fields]

    async def keep_alive(self, queue: str, consumer: str, entries: Sequence[str]) -> None:
        """Reset the idle time of entries still being worked on, so no one reclaims them."""
        if not entries:
            return
        async with redis_errors_as_503():
            await self.redis.xclaim(
                self.keys.stream(queue), CONSUMER_GROUP, consumer, min_idle_time=0,
                message_ids=list(entries), justid=True,
            )

    async def start(self, queue: str, consumer: str, entry: str, job_id: str) -> Delivery | None:
        reply = await self._run(
            "START", job_id, entry, consumer, queue, self.settings.result_ttl_s,
            self.settings.dlq_maxlen,
        )
        if reply[0] != "run":
            return None
        _, attempt, payload, task, max_attempts, correlation_id, then, traceparent = reply
        return Delivery(
            job_id=job_id, entry=entry, attempt=int(attempt), task=task,
            payload=json.loads(payload), max_attempts=int(max_attempts),
            correlation_id=correlation_id or None,
            then=[FollowUp.model_validate(f) for f in json.loads(then)] if then else [],
            traceparent=traceparent or None,
        )

    async def succeed(self, queue: str, d: Delivery, result: Any,
                      children: Sequence[NewJob] = (), chain_error: str = "") -> bool:
        """Record success and, in the same step, create the chain's follow-up jobs."""
        now = self.clock.now()
        encoded = [_encode(child, now) for child in children]
        verdict = await self._run(
            "SUCCEED", d.job_id, d.entry, str(d.attempt), queue,
            json.dumps(result, separators=(",", ":")), self.settings.result_ttl_s,
            json.dumps(encoded), self.settings.idempotency_ttl_s, chain_error,
        )
        return bool(verdict == "ok")

    async def retry_later(self, queue: str, d: Delivery, error: JobError, due: float) -> bool:
        verdict = await self._run(
            "RETRY_LATER", d.job_id, d.entry, str(d.attempt), queue, error.model_dump_json(),
            repr(due),
        )
        return bool(verdict == "ok")

    async def fail(
        self, queue: str, d: Delivery, error: JobError, final: JobStatus
    ) -> bool:
        verdict = await self._run(
            "FAIL", d.job_id, d.entry, str(d.attempt), queue, error.model_dump_json(),
            final.value, self.settings.result_ttl_s, self.settings.dlq_maxlen,
        )
        return bool(verdict == "ok")

    async def promote_due(self, queue: str, limit: int = 500) -> int:
        return int(await self._run("PROMOTE", queue, limit))

    async def cancel_requested(self, job_ids: Sequence[str]) -> set[str]:
        if not job_ids:
            return set()
        async with redis_errors_as_503():
            pipe = self.redis.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hget(self.keys.job(job_id), "cancel_requested")
            flags = await pipe.execute()
        return {job_id for job_id, flag in zip(job_ids, flags, strict=True) if flag == "1"}

    async def heartbeat(self, queue: str, consumer: str) -> bool:
        """Mark the consumer live; whether an operator has drained its queue (read after the
        mark in the same round trip: a step that marks after a drain always sees it)."""
        async with redis_errors_as_503():
            pipe = self.redis.pipeline(transaction=False)
            pipe.zadd(self.keys.consumers(queue), {consumer: self.clock.now()})
            pipe.hget(self.keys.pool_controls(queue), POOL_DRAINING)
            _, draining = await pipe.execute()
        return bool(draining == "1")

    async def forget_consumer(self, queue: str, consumer: str) -> None:
        """Graceful exit: drop the heartbeat, and the group consumer if it holds nothing."""
        async with redis_errors_as_503():
            await self.redis.zrem(self.keys.consumers(queue), consumer)
            pending = await self.redis.xpending_range(
                self.keys.stream(queue), CONSUMER_GROUP, min="-", max="+", count=1,
                consumername=consumer,
            )
            if not pending:
                await self.redis.xgroup_delconsumer(
                    self.keys.stream(queue), CONSUMER_GROUP, consumer
                )

    # -- stats ------------------------------------------------------------------------------

    async def known_queues(self) -> list[str]:
        async with redis_errors_as_503():
            return sorted(await self.redis.smembers(self.keys.queues))

    async def queue_stats(self, queues: Sequence[str]) -> list[QueueStats]:
        now = self.clock.now()
        async with redis_errors_as_503():
            pipe = self.redis.pipeline(transaction=False)
            for q in queues:
                stream = self.keys.stream(q)
                pipe.xlen(stream)
                pipe.xinfo_groups(stream)
                pipe.zcard(self.keys.delayed(q))
                pipe.xlen(self.keys.dead_letters(q))
                pipe.zcount(self.keys.consumers(q), now - 15, "+inf")
                pipe.hmget(self.keys.pool_controls(q), POOL_DRAINING, POOL_TARGET_REPLICAS)
            raw = await pipe.execute(raise_on_error=False)
            stats = []
            for i, q in enumerate(queues):
                length, groups, delayed, dead, replicas, controls = raw[i * 6 : i * 6 + 6]
                draining, target = (None, None) if isinstance(controls, Exception) else controls
                group = _our_group(groups)
                pending = int(group.get("pending", 0)) if group else 0
                oldest = 0.0
                last = group.get("last-delivered-id") if group else "0-0"
                first = await self.redis.xrange(
                    self.keys.stream(q), min=f"({last}", max="+", count=1
                ) if length else []
                if first:
                    oldest = max(0.0, now - int(first[0][0].split("-")[0]) / 1000)
                stats.append(
                    QueueStats(
                        queue=q,
                        length=_int(length),
                        pending=pending,
                        lag=max(_int(length) - pending, 0),
                        oldest_waiting_s=round(oldest, 3),
                        delayed=_int(delayed),
                        dead_lettered=_int(dead),
                        replicas=_int(replicas),
                        draining=draining == "1",
                        operator_target=int(target) if target else None,
                    )
                )
        return stats

    async def ping(self) -> None:
        async with redis_errors_as_503():
            await self.redis.ping()


def _our_group(groups: Any) -> dict[str, Any] | None:
    if isinstance(groups, Exception):
        return None
    for group in groups:
        if group.get("name") == CONSUMER_GROUP:
            return dict(group)
    return None


def _int(value: Any) -> int:
    return 0 if isinstance(value, Exception) else int(value)

