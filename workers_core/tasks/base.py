"""The unit of extension: a ``Task`` declares what it accepts, returns, needs and how it retries."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict, Field

from workers_core.config import Settings
from workers_core.jobs.retry import RetryPolicy

PayloadT = TypeVar("PayloadT", bound=BaseModel)
ResultT = TypeVar("ResultT", bound=BaseModel)


class Resources(BaseModel):
    """What one pool replica reserves in Ray (logical; fractions below 1 allowed)."""

    model_config = ConfigDict(frozen=True)

    num_cpus: float = Field(default=1.0, ge=0)
    num_gpus: float = Field(default=0.0, ge=0)
    memory_mb: int | None = Field(default=None, ge=0)


class Health(BaseModel):
    """A deep health check's verdict: ``ok`` plus what was checked and what failed."""

    ok: bool
    checks: dict[str, str] = Field(default_factory=dict)


@dataclass
class JobContext:
    """What a running job knows about itself."""

    job_id: str
    task: str
    queue: str
    attempt: int
    max_attempts: int
    correlation_id: str | None
    settings: Settings
    artifacts: Any = field(default=None, repr=False)  # ArtifactStore
    side_effects: Any = field(default=None, repr=False)  # SideEffectLedger
    progress: Any = field(default=None, repr=False)  # ProgressRecorder
    log: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.log is None:
            self.log = structlog.get_logger("workers_core.job").bind(
                job_id=self.job_id, task=self.task, attempt=self.attempt,
                correlation_id=self.correlation_id,
            )

    async def report_progress(self, done: int, total: int) -> None:
        """How far a long job is (``done`` of ``total``); a no-op where nothing records it."""
        if self.progress is not None:
            await self.progress(done, total)

    @property
    def last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


class Task(ABC, Generic[PayloadT, ResultT]):
    """Subclass, set the class attributes, implement ``run``; register under the
    ``workers_core.tasks`` entry point group. One instance lives per pool replica."""

    name: ClassVar[str]
    queue: ClassVar[str]
    Payload: ClassVar[type[BaseModel]]
    Result: ClassVar[type[BaseModel]]
    resources: ClassVar[Resources] = Resources()
    concurrency: ClassVar[int] = 1
    rate_limit: ClassVar[str | None] = None
    time_limit_s: ClassVar[float] = 300.0
    retry: ClassVar[RetryPolicy] = RetryPolicy()
    non_retryable: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def setup(self) -> None:
        """Load models, open browsers and connections: once per replica, before any job."""

    @abstractmethod
    async def run(self, payload: PayloadT, ctx: JobContext) -> ResultT:
        """Do the job. Raise ``Retry`` or ``NonRetryable`` to steer retries."""

    async def health(self) -> Health:
        """Check what the task depends on; the default says only that it is loaded."""
        return Health(ok=True, checks={"loaded": "ok"})

    async def close(self) -> None:
        """Release what ``setup`` acquired."""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "queue": cls.queue,
            "payload_schema": cls.Payload.model_json_schema(),
            "result_schema": cls.Result.model_json_schema(),
            "max_attempts": cls.retry.max_attempts,
            "time_limit_s": cls.time_limit_s,
            "rate_limit": cls.rate_limit,
        }
