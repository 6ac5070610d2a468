"""What the registry knows about a worker, what a heartbeat carries, and its events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

TAG_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
REPLICA_PATTERN = r"^[A-Za-z0-9_.:#@/-]{1,256}$"


class WorkerStatus(StrEnum):
    RUNNING = "running"  # jobs in flight
    IDLE = "idle"  # alive, nothing in flight
    ERROR = "error"  # alive, its deep health check fails
    STOPPED = "stopped"  # unregistered (graceful shutdown or DELETE)
    MISSING = "missing"  # silent past the TTL


class ReportedStatus(StrEnum):
    """The statuses a worker may claim; ``stopped`` and ``missing`` are the registry's call."""

    RUNNING = "running"
    IDLE = "idle"
    ERROR = "error"


class EventType(StrEnum):
    REGISTERED = "registered"
    HEARTBEAT_LATE = "heartbeat-late"
    MISSING = "missing"
    RECOVERED = "recovered"
    UNREGISTERED = "unregistered"


class WorkerMetrics(BaseModel):
    """Counters a worker reports with each heartbeat."""

    queue_size: int | None = Field(default=None, ge=0, description="Entries in its queue.")
    in_flight: int = Field(default=0, ge=0, description="Jobs running on this worker now.")
    last_task_at: datetime | None = Field(default=None, description="When its last job ended.")
    tasks_ok: int = Field(default=0, ge=0)
    tasks_failed: int = Field(default=0, ge=0)


class HealthDetail(BaseModel):
    """The worker's last deep health check: which check failed and with what error."""

    ok: bool = True
    checks: dict[str, str] = Field(
        default_factory=dict, description="`<task>.<check>` -> `ok` or the error."
    )
    checked_at: datetime | None = None
    failing_since: datetime | None = Field(
        default=None, description="Start of the current run of failed checks."
    )
    circuit: str = Field(default="closed", description="closed | open | half-open")


class Heartbeat(BaseModel):
    """A worker's report of itself (also the body of `PATCH /v1/workers/{tag}/heartbeat`)."""

    replica_id: str = Field(pattern=REPLICA_PATTERN, description="Unique per worker process.")
    node: str = Field(default="", max_length=256, description="Host or Ray node id.")
    version: str = Field(default="", max_length=64)
    status: ReportedStatus = ReportedStatus.IDLE
    health_endpoint: str | None = Field(default=None, max_length=512)
    interval_s: float | None = Field(
        default=None, gt=0, le=3600, description="Its heartbeat period (default: the platform's)."
    )
    metrics: WorkerMetrics = Field(default_factory=WorkerMetrics)
    health: HealthDetail = Field(default_factory=HealthDetail)


class WorkerRecord(BaseModel):
    """One worker as the registry sees it."""

    tag: str = Field(description="The queue it consumes.")
    replica_id: str
    node: str
    version: str
    status: WorkerStatus
    since: datetime = Field(description="When it entered this status.")
    registered_at: datetime
    last_seen: datetime
    interval_s: float
    health_endpoint: str | None
    health_score: int = Field(ge=0, le=100)
    metrics: WorkerMetrics
    health: HealthDetail
    late: bool = Field(default=False, description="Heartbeat overdue, not yet missing.")


class TagSummary(BaseModel):
    """A queue's workers and their aggregate health score (`GET /v1/workers/{tag}`)."""

    tag: str
    health_score: int = Field(ge=0, le=100, description="Mean score of the workers that "
                              "have not stopped; 0 when there are none.")
    counts: dict[WorkerStatus, int]
    workers: list[WorkerRecord]


class RegistryEvent(BaseModel):
    """Published as JSON on `<ns>:events`."""

    type: EventType
    tag: str
    replica_id: str
    at: datetime
    status: WorkerStatus
    detail: str | None = None
