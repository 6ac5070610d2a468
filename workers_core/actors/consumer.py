"""The stream consumer a pool replica runs: read, run, settle; a ``step()`` and a thin loop.

Delivery is at-least-once. An entry is acknowledged only in the same atomic step that
records the job's outcome; an entry whose consumer dies stays pending and is reclaimed
(XAUTOCLAIM) by a live replica after the visibility timeout. Live replicas keep the
entries they work on fresh (XCLAIM to themselves), so only dead consumers lose theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError

from workers_core.artifacts import artifact_store_from_settings
from workers_core.clock import Clock, SystemClock
from workers_core.errors import (
    NonRetryable,
    Retry,
    StoreUnavailable,
    TimeLimitExceeded,
    WorkersError,
)
from workers_core.jobs import chains
from workers_core.jobs.models import JobError, JobStatus
from workers_core.jobs.progress import ProgressRecorder
from workers_core.jobs.side_effects import SideEffectLedger
from workers_core.jobs.store import Delivery, JobStore, NewJob
from workers_core.observability import metrics
from workers_core.observability.trace_context import log_fields
from workers_core.ratelimit import Rate, RedisRateLimiter
from workers_core.tasks.base import Health, JobContext, Task
from workers_core.tasks.registry import QueueSpec, TaskCatalog

log = structlog.get_logger("workers_core.consumer")


@dataclass
class ConsumerStats:
    """What a replica reports about itself (registry heartbeats, /v1/queues)."""

    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    last_job_at: float | None = None
    in_flight: int = 0
    errors_in_loop: int = 0
    started_at: float = field(default=0.0)


@dataclass
class _Running:
    delivery: Delivery
    task: asyncio.Task[None]
    cancel_requested: bool = False


class QueueConsumer:
    """Consumes one queue's stream for one replica."""

    def __init__(
        self,
        store: JobStore,
        spec: QueueSpec,
        consumer: str,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        catalog: TaskCatalog | None = None,
    ) -> None:
        self.store = store
        self.spec = spec
        self.queue = spec.queue
        self.consumer = consumer
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.settings = store.settings
        self.tasks: dict[str, Task[Any, Any]] = {t.name: t(self.settings) for t in spec.tasks}
        self.limiters = {
            t.name: RedisRateLimiter(
                store.redis, store.keys.rate_limit(t.name), Rate.parse(t.rate_limit),
                clock=self.clock,
            )
            for t in spec.tasks if t.rate_limit
        }
        self.artifacts = artifact_store_from_settings(self.settings)
        self.side_effects = SideEffectLedger(store.redis, store.keys.prefix,
                                             self.settings.idempotency_ttl_s)
        self.stats = ConsumerStats(started_at=self.clock.now())
        self._running: dict[str, _Running] = {}
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._last_keep_alive = 0.0
        self._last_queue_observed = 0.0
        self._catalog = catalog

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Set up every task type (load models, open browsers) and the consumer group."""
        for task in self.tasks.values():
            await task.setup()
        await self.store.ensure_group(self.queue)

    async def run_forever(self) -> None:
        """Step until stopped; a failing step is logged and retried with backoff, never fatal."""
        failures = 0
        while not self._stopping.is_set():
            try:
                await self.step()
                failures = 0
            except Exception as exc:  # the loop must outlive any one step
                failures += 1
                self.stats.errors_in_loop += 1
                delay = min(0.1 * 2**failures, 5.0)
                log.warning("consumer_step_failed", queue=self.queue, error=str(exc),
                            error_type=type(exc).__name__, retry_in_s=delay)
                await self._sleep_unless_stopping(delay)

    async def stop(self, grace_s: float) -> None:
        """Stop reading; let in-flight jobs finish within ``grace_s``; leave the rest pending
        (unacknowledged) for another replica to reclaim."""
        self._stopping.set()
        running = [r.task for r in self._running.values()]
        if running:
            _, unfinished = await asyncio.wait(running, timeout=grace_s)
            for t in unfinished:
                t.cancel()
            if unfinished:
                log.warning("shutdown_left_jobs_pending", queue=self.queue, count=len(unfinished))
                await asyncio.wait(unfinished, timeout=2)
        for task in self.tasks.values():
            try:
                await task.close()
            except Exception as exc:
                log.warning("task_close_failed", task=task.name, error=str(exc))
        with contextlib.suppress(WorkersError):
            await self.store.forget_consumer(self.queue, self.consumer)

    async def health(self) -> dict[str, Health]:
        return {name: await task.health() for name, task in self.tasks.items()}

    # -- one step ---------------------------------------------------------------------------

    async def step(self) -> int:
        """Housekeeping, then take up to the free slots' worth of entries. Returns how many."""
        draining = await self.store.heartbeat(self.queue, self.consumer)  # an operator's hold
        await self.store.promote_due(self.queue)
        await self._keep_alive()
        await self._honour_cancel_requests()
        await self._observe_queue()
        if draining:  # in-flight jobs go on; none taken
            await self._sleep_unless_stopping(self.settings.read_block_ms / 1000)
            return 0
        free = self.spec.concurrency - len(self._running)
        if free <= 0:
            self._slot_freed.clear()
            await self._wait_for_slot(self.settings.read_block_ms / 1000)
            return 0
        entries = await self.store.reclaim(
            self.queue, self.consumer, self.spec.visibility_timeout_s,
            min(free, self.settings.read_batch_size),
        )
        if not entries:
            entries = await self.store.read(
                self.queue, self.consumer, min(free, self.settings.read_batch_size),
                self.settings.read_block_ms,
            )
        for entry, job_id in entries:
            self._spawn(entry, job_id)
        return len(entries)

    def _spawn(self, entry: str, job_id: str) -> None:
        placeholder = Delivery(job_id, entry, 0, "", {}, 0, None)
        task = asyncio.create_task(self._process(entry, job_id), name=f"job:{job_id}")
        self._running[job_id] = _Running(placeholder, task)
        self.stats.in_flight = len(self._running)
        task.add_done_callback(lambda _t: self._finished(job_id))

    def _finished(self, job_id: str) -> None:
        self._running.pop(job_id, None)
        self.stats.in_flight = len(self._running)
        self._slot_freed.set()

    async def _wait_for_slot(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._slot_freed.wait(), timeout=timeout_s)

    async def _keep_alive(self) -> None:
        now = self.clock.now()
        if now - self._last_keep_alive < self.spec.visibility_timeout_s / 3:
            return
        self._last_keep_alive = now
        await self.store.keep_alive(
            self.queue, self.consumer, [r.delivery.entry for r in self._running.values()]
        )

    async def _observe_queue(self) -> None:
        """Refresh this queue's depth/lag/delayed/DLQ gauges, every ``metrics_queue_interval_s``
        (each replica does it for its own queue: one cheap pipelined read)."""
        now = self.clock.now()
        if now - self._last_queue_observed < self.settings.metrics_queue_interval_s:
            return
        self._last_queue_observed = now
        [stats] = await self.store.queue_stats([self.queue])
        metrics.queue_observed(stats)

    async def _honour_cancel_requests(self) -> None:
        started = [j for j, r in self._running.items() if r.delivery.attempt and
                   not r.cancel_requested]
        for job_id in await self.store.cancel_requested(started):
            running = self._running.get(job_id)
            if running:
                running.cancel_requested = True
                running.task.cancel()

    # -- one job ----------------------------------------------------------------------------

    async def _process(self, entry: str, job_id: str) -> None:
        # Each job runs in its own asyncio task, so these bindings reach every log line of
        # this job (the task's own loggers included) and no other job's.
        structlog.contextvars.bind_contextvars(job_id=job_id, queue=self.queue)
        delivery = await self._settle(lambda: self.store.start(
            self.queue, self.consumer, entry, job_id))
        if delivery is None:
            return
        started = self.clock.now()
        structlog.contextvars.bind_contextvars(
            task=delivery.task, attempt=delivery.attempt,
            correlation_id=delivery.correlation_id, **log_fields(delivery.traceparent))
        metrics.job_started(delivery.task, self.queue, started - _entry_time_s(entry))
        running = self._running.get(job_id)
        if running:
            running.delivery = delivery
        task = self.tasks.get(delivery.task)
        ctx = JobContext(
            job_id=job_id, task=delivery.task, queue=self.queue, attempt=delivery.attempt,
            max_attempts=delivery.max_attempts, correlation_id=delivery.correlation_id,
            settings=self.settings, artifacts=self.artifacts, side_effects=self.side_effects,
            progress=ProgressRecorder(self.store.redis, self.store.keys, job_id,
                                      self.settings.result_ttl_s),
        )
        try:
            if task is None:
                raise NonRetryable(f"task {delivery.task!r} is not served by this pool")
            if delivery.task in self.limiters:
                await self.limiters[delivery.task].acquire()
            result = await self._run_task(task, delivery, ctx)
        except asyncio.CancelledError:
            if running and running.cancel_requested:
                await self._record_failure(delivery, ctx, _Cancelled("cancelled on request"),
                                           started)
                return
            raise  # shutdown: leave the entry pending for another replica
        except Exception as exc:
            await self._record_failure(delivery, ctx, exc, started)
            return
        children, chain_error = self._follow_ups(delivery, result)
        ok = await self._settle(lambda: self.store.succeed(
            self.queue, delivery, result, children, chain_error))
        if ok:
            metrics.job_finished(delivery.task, self.queue, JobStatus.SUCCEEDED.value,
                                 self.clock.now() - started)
            for child in children:
                metrics.job_submitted(child.submission.task, child.queue)
            self.stats.succeeded += 1
            self.stats.last_job_at = self.clock.now()
            ctx.log.debug("job_succeeded")
        else:
            ctx.log.warning("job_result_stale", detail="a newer delivery owns this job")

    def _follow_ups(self, d: Delivery, result: Any) -> tuple[list[NewJob], str]:
        """The chain's children, built from the result before success is recorded; a chain
        that cannot be built leaves the parent succeeded, with ``chain_error`` saying why."""
        if not d.then:
            return [], ""
        if self._catalog is None:
            self._catalog = TaskCatalog.discover()
        parent = {"id": d.job_id, "task": d.task, "correlation_id": d.correlation_id,
                  "payload": d.payload, "result": result}
        try:
            built = chains.children_of(self._catalog, parent, d.then)
        except chains.ChainError as exc:
            log.warning("chain_failed", job_id=d.job_id, error=exc.message)
            return [], exc.message
        return [NewJob(submission=sub, queue=queue, max_attempts=attempts,
                       idempotency_key=f"chain:{d.job_id}:{i}", parent_id=d.job_id,
                       traceparent=d.traceparent)
                for i, (sub, queue, attempts) in enumerate(built)], ""

    async def _run_task(self, task: Task[Any, Any], d: Delivery, ctx: JobContext) -> Any:
        try:
            payload = task.Payload.model_validate(d.payload)
        except ValidationError as exc:
            raise NonRetryable(f"invalid payload: {exc}") from exc
        limit = self.spec.time_limit_s
        try:
            result = await asyncio.wait_for(task.run(payload, ctx), timeout=limit)
        except TimeoutError as exc:
            raise TimeLimitExceeded(f"{task.name} ran past its time limit of {limit} s") from exc
        if not isinstance(result, BaseModel):
            result = task.Result.model_validate(result)
        return result.model_dump(mode="json")

    async def _record_failure(
        self, d: Delivery, ctx: JobContext, exc: BaseException, started_s: float
    ) -> None:
        task = self.tasks.get(d.task)
        retryable = _retryable(exc, task)
        error = JobError(
            type=type(exc).__name__, message=str(exc)[:4000] or type(exc).__name__,
            retryable=retryable, attempt=d.attempt,
        )
        if isinstance(exc, _Cancelled):
            if await self._settle(
                    lambda: self.store.fail(self.queue, d, error, JobStatus.CANCELLED)):
                metrics.job_finished(d.task, self.queue, JobStatus.CANCELLED.value,
                                     self.clock.now() - started_s)
            ctx.log.info("job_cancelled")
            return
        if retryable and d.attempt < d.max_attempts:
            after = exc.after_s if isinstance(exc, Retry) and exc.after_s is not None else None
            if after is None:
                policy = task.retry if task else None
                after = policy.delay_s(d.attempt, self.rng) if policy else 1.0
            if await self._settle(lambda: self.store.retry_later(
                    self.queue, d, error, self.clock.now() + after)):
                metrics.job_retried(d.task, self.queue, self.clock.now() - started_s)
            self.stats.retried += 1
            ctx.log.info("job_retrying", error=error.message, retry_in_s=round(after, 3))
            return
        final = JobStatus.DEAD if retryable else JobStatus.FAILED
        if await self._settle(lambda: self.store.fail(self.queue, d, error, final)):
            metrics.job_finished(d.task, self.queue, final.value, self.clock.now() - started_s)
        self.stats.failed += 1
        self.stats.last_job_at = self.clock.now()
        ctx.log.warning("job_" + final.value, error=error.message, error_type=error.type,
                        traceback="".join(traceback.format_exception(exc))[-2000:])

    async def _settle(self, op: Callable[[], Awaitable[Any]]) -> Any:
        """Run a store step; while Redis is away, keep trying (the outcome must be recorded).
        If the replica is stopping meanwhile, give up: the entry stays pending and is rerun."""
        delay = 0.1
        while True:
            try:
                return await op()
            except StoreUnavailable as exc:
                if self._stopping.is_set():
                    raise asyncio.CancelledError from exc
                log.warning("store_unavailable_retrying", queue=self.queue, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)


class _Cancelled(Exception):
    pass


def _entry_time_s(entry: str) -> float:
    """When the entry entered the stream: XADD ids start with Redis's clock in ms."""
    return int(entry.split("-", 1)[0]) / 1000


def _retryable(exc: BaseException, task: Task[Any, Any] | None) -> bool:
    if isinstance(exc, WorkersError):
        return exc.retryable
    return not (task is not None and isinstance(exc, task.non_retryable))
