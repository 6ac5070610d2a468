"""Diagnostic tasks for tests, benchmarks and smoke checks: echo, sleep, fail."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workers_core.errors import NonRetryable, Retry
from workers_core.jobs.retry import RetryPolicy
from workers_core.tasks.base import JobContext, Resources, Task

_FAST_RETRY = RetryPolicy(max_attempts=3, backoff_base_s=0.5, backoff_max_s=5.0)
_LIGHT = Resources(num_cpus=0.1)


class EchoPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(default="", max_length=100_000)
    data: dict[str, Any] = Field(default_factory=dict)


class EchoResult(BaseModel):
    message: str
    data: dict[str, Any]
    attempt: int


class Echo(Task[EchoPayload, EchoResult]):
    """Returns its payload: the no-op job of the benchmarks."""

    name = "debug.echo"
    queue = "debug"
    Payload = EchoPayload
    Result = EchoResult
    resources = _LIGHT
    concurrency = 64
    retry = _FAST_RETRY

    async def run(self, payload: EchoPayload, ctx: JobContext) -> EchoResult:
        return EchoResult(message=payload.message, data=payload.data, attempt=ctx.attempt)


class SleepPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0, le=3600)
    progress_steps: int = Field(
        default=0, ge=0, le=10_000,
        description="Sleep in this many steps, reporting progress (steps done of all) "
                    "at the start and after each step; 0: one sleep, no progress.",
    )


class SleepResult(BaseModel):
    slept_s: float


class Sleep(Task[SleepPayload, SleepResult]):
    """Holds a slot for a while, optionally reporting progress: for time limits, shutdown,
    crash and progress tests."""

    name = "debug.sleep"
    queue = "debug"
    Payload = SleepPayload
    Result = SleepResult
    resources = _LIGHT
    concurrency = 64
    time_limit_s = 600.0
    retry = _FAST_RETRY

    async def run(self, payload: SleepPayload, ctx: JobContext) -> SleepResult:
        steps = payload.progress_steps
        if not steps:
            await asyncio.sleep(payload.seconds)
            return SleepResult(slept_s=payload.seconds)
        await ctx.report_progress(0, steps)
        for done in range(1, steps + 1):
            await asyncio.sleep(payload.seconds / steps)
            await ctx.report_progress(done, steps)
        return SleepResult(slept_s=payload.seconds)


class FailPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    times: int | None = Field(
        default=None, ge=0, description="Fail this many attempts, then succeed; null: always."
    )
    retryable: bool = True
    message: str = "debug.fail failed on purpose"


class FailResult(BaseModel):
    succeeded_on_attempt: int


class Fail(Task[FailPayload, FailResult]):
    """Fails N times then succeeds, or always: for retry and dead-letter paths."""

    name = "debug.fail"
    queue = "debug"
    Payload = FailPayload
    Result = FailResult
    resources = _LIGHT
    concurrency = 64
    retry = _FAST_RETRY

    async def run(self, payload: FailPayload, ctx: JobContext) -> FailResult:
        if payload.times is None or ctx.attempt <= payload.times:
            if payload.retryable:
                raise Retry(f"{payload.message} (attempt {ctx.attempt})")
            raise NonRetryable(f"{payload.message} (attempt {ctx.attempt})")
        return FailResult(succeeded_on_attempt=ctx.attempt)


TASKS = [Echo, Sleep, Fail]
