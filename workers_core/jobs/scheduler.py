"""The scheduler loop: every gateway replica runs one; each due tick becomes exactly one job.

Two guards make that hold for any number of replicas. The job for tick T is submitted with
the idempotency key ``schedule:<id>:<T>`` (the store's atomic SUBMIT returns the existing
job to every later submitter), and the schedule moves to its next tick by compare-and-set
(``ScheduleStore.advance``), so one replica advances it and the others see it moved.
A replica that dies between the two leaves the tick due; the next one re-submits (a
duplicate, the same job) and advances.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from workers_core.clock import Clock, SystemClock
from workers_core.config import Settings
from workers_core.errors import IdempotencyConflict, InvalidPayload, StoreUnavailable, UnknownTask
from workers_core.jobs.models import JobSubmission
from workers_core.jobs.schedules import (
    CronTicks,
    FireKind,
    FireRecord,
    ScheduleNotFound,
    ScheduleStore,
    StoredSchedule,
)
from workers_core.jobs.store import JobStore, NewJob, Submitted

log = structlog.get_logger("workers_core.scheduler")

Resolve = Callable[[JobSubmission, str], NewJob]
"""A submission checked against its task (404/422 errors) and its idempotency key attached:
the gateway passes its ``POST /v1/jobs`` resolution, so a tick's job is checked the same way."""

MISSED_COUNT_CAP = 10_000


@dataclass(frozen=True)
class FirePlan:
    """What to do with a due schedule at ``now``."""

    fire_tick: int | None  # the tick to submit (the latest one due), if not too late
    late: bool             # that tick is not the one the schedule was waiting for
    skipped: int           # missed ticks not fired, from the due tick on
    next_tick: int | None  # None: the schedule has ended


def plan_fire(ticks: CronTicks, due_tick: int, now_s: float, grace_s: float) -> FirePlan:
    """Coalesce missed ticks (Celery beat, APScheduler ``coalesce``): fire only the latest
    due one, and only if at most ``grace_s`` late (Kubernetes ``startingDeadlineSeconds``)."""
    latest = ticks.latest_at_or_before(now_s)
    if latest is None or latest < due_tick:
        latest = due_tick
    missed = ticks.between(due_tick, latest, MISSED_COUNT_CAP)
    on_time = now_s - latest <= grace_s
    skipped = missed if on_time else missed + 1
    return FirePlan(
        fire_tick=latest if on_time else None,
        late=latest != due_tick,
        skipped=skipped,
        next_tick=ticks.next_after(max(now_s, latest)),
    )


def idempotency_key(schedule_id: str, tick_s: int) -> str:
    return f"schedule:{schedule_id}:{_iso(tick_s)}"


async def fire_now(schedules: ScheduleStore, jobs: JobStore, resolve: Resolve,
                   schedule_id: str, request_key: str | None = None) -> Submitted:
    """``:trigger``: one job now, outside the cron; the next tick stays as it was. A
    repeated ``request_key`` (the caller's Idempotency-Key) returns the same job."""
    s = await schedules.load(schedule_id)
    key = f"schedule:{s.id}:manual:{request_key or uuid.uuid4().hex}"
    [submitted] = await jobs.submit_many([resolve(s.spec.job_submission(), key)])
    if not submitted.duplicate:
        await schedules.record(s.id, submitted.id, FireRecord(
            at=_at(schedules.clock.now()), kind=FireKind.MANUAL, job_id=submitted.id))
    return submitted


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Scheduler:
    """``step()`` fires what is due; ``run_forever()`` steps every poll interval."""

    def __init__(self, schedules: ScheduleStore, jobs: JobStore, resolve: Resolve,
                 settings: Settings, clock: Clock | None = None) -> None:
        self.schedules = schedules
        self.jobs = jobs
        self.resolve = resolve
        self.settings = settings
        self.clock = clock or SystemClock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def step(self) -> int:
        """Fire every due schedule once; the number of jobs this call created."""
        now = self.clock.now()
        created = 0
        for schedule_id, tick in await self.schedules.due(now, self.settings.schedule_batch_size):
            try:
                created += await self.fire_due(schedule_id, tick, now)
            except StoreUnavailable:
                raise
            except Exception as exc:  # one broken schedule must not stop the others
                log.exception("schedule_fire_failed", schedule=schedule_id, error=str(exc))
        return created

    async def fire_due(self, schedule_id: str, tick: int, now: float) -> int:
        try:
            s = await self.schedules.load(schedule_id)
        except ScheduleNotFound:
            return 0
        if s.paused or s.next_fire_s != tick:
            return 0  # another replica moved it since `due` was read
        grace = s.spec.misfire_grace_s or self.settings.schedule_misfire_grace_s
        plan = plan_fire(s.spec.ticks(), tick, now, grace)
        records: list[FireRecord] = []
        if plan.skipped:
            records.append(FireRecord(
                at=_at(now), kind=FireKind.SKIPPED, tick=_at(tick),
                skipped=plan.skipped,
                detail=f"missed while no scheduler ran (misfire grace {grace} s)"))
        submitted: Submitted | None = None
        if plan.fire_tick is not None:
            kind = FireKind.CATCH_UP if plan.late else FireKind.SCHEDULED
            submitted, record = await self._submit(s, plan.fire_tick, kind, now)
            records.append(record)
        advanced = await self.schedules.advance(
            s, plan.next_tick, fired_tick=plan.fire_tick,
            job_id=submitted.id if submitted else None, records=records)
        if advanced:
            log.info("schedule_fired", schedule=s.id, tick=plan.fire_tick,
                     job_id=submitted and submitted.id, skipped=plan.skipped,
                     next_tick=plan.next_tick)
        return int(submitted is not None and not submitted.duplicate)

    async def _submit(self, s: StoredSchedule, tick: int, kind: FireKind,
                      now: float) -> tuple[Submitted | None, FireRecord]:
        try:
            new_job = self.resolve(s.spec.job_submission(), idempotency_key(s.id, tick))
            [submitted] = await self.jobs.submit_many([new_job])
        except (UnknownTask, InvalidPayload, IdempotencyConflict) as exc:
            log.warning("schedule_job_rejected", schedule=s.id, tick=tick, error=exc.message)
            return None, FireRecord(at=_at(now), kind=FireKind.FAILED, tick=_at(tick),
                                    detail=exc.message)
        return submitted, FireRecord(at=_at(now), kind=kind, tick=_at(tick),
                                     job_id=submitted.id)

    async def run_forever(self) -> None:
        """Step every ``schedule_poll_interval_s`` until stopped; failures are logged."""
        failures = 0
        while not self._stopping.is_set():
            delay = self.settings.schedule_poll_interval_s
            try:
                await self.step()
                failures = 0
            except Exception as exc:  # the loop must outlive any one step (Redis away)
                failures += 1
                delay = min(delay * 2**failures, 30.0)
                log.warning("scheduler_step_failed", error=str(exc),
                            error_type=type(exc).__name__, retry_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def start(self) -> None:
        """Run the loop as a task of the running event loop (a gateway replica's)."""
        self._task = asyncio.get_running_loop().create_task(self.run_forever())

    async def stop(self, timeout_s: float = 5.0) -> None:
        """End the loop after its current step (a step half done is safe to redo)."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, timeout_s)
