"""The job as the API, the SDK and the store see it."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator


class JobStatus(StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DEAD, JobStatus.CANCELLED}
)


_sequence = itertools.count(secrets.randbelow(0x10000))


def new_job_id(now_s: float | None = None) -> str:
    """32 hex chars: 48-bit ms timestamp, a 16-bit per-process sequence, 64 random bits, so
    lexical order is creation order (within a batch too)."""
    ms = int((time.time() if now_s is None else now_s) * 1000)
    return f"{ms:012x}{next(_sequence) & 0xFFFF:04x}{secrets.token_hex(8)}"


MAX_CHAIN_JOBS = 20
MAX_CHAIN_DEPTH = 5


class FollowUp(BaseModel):
    """A job to submit when its parent succeeds. Payload values of the form
    ``{"$parent": "result.artifact_id"}`` are replaced by that path of the parent job
    (``result…``, ``id``, ``correlation_id``, ``payload…``) when the child is created."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=128, examples=["email.send"])
    payload: dict[str, Any] = Field(default_factory=dict)
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    correlation_id: str | None = Field(
        default=None, max_length=128, description="Default: the parent's (or the parent's id)."
    )
    then: list[FollowUp] = Field(default_factory=list, max_length=10)


def check_chain_shape(then: list[FollowUp]) -> list[FollowUp]:
    """Pydantic validator for a ``then`` list: bounds a chain's depth and total jobs."""
    def walk(items: list[FollowUp], depth: int) -> int:
        if items and depth > MAX_CHAIN_DEPTH:
            raise ValueError(f"a chain is at most {MAX_CHAIN_DEPTH} jobs deep")
        return sum(1 + walk(f.then, depth + 1) for f in items)

    if walk(then, 1) > MAX_CHAIN_JOBS:
        raise ValueError(f"a chain holds at most {MAX_CHAIN_JOBS} follow-up jobs")
    return then


class JobSubmission(BaseModel):
    """What a client sends to create one job."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=128, examples=["debug.echo"])
    payload: dict[str, Any] = Field(default_factory=dict)
    not_before: datetime | None = Field(
        default=None, description="Do not start before this time (ISO 8601 or epoch seconds)."
    )
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    correlation_id: str | None = Field(default=None, max_length=128)
    idempotency_key: str | None = Field(
        default=None,
        max_length=255,
        description="Batch items only; single submissions use the Idempotency-Key header.",
    )
    then: list[FollowUp] = Field(
        default_factory=list, max_length=10,
        description="Jobs to submit when this one succeeds (see FollowUp).",
    )

    _then_shape = field_validator("then")(check_chain_shape)

    @field_validator("not_before")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            return v.replace(tzinfo=UTC)
        return v


class BatchSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[JobSubmission] = Field(min_length=1)


class JobError(BaseModel):
    type: str
    message: str
    retryable: bool
    attempt: int


class JobProgress(BaseModel):
    """How far a job said it was, last time it reported (``ctx.report_progress``)."""

    done: int = Field(description="Units done (CUIs, pages…), as the task counts them.")
    total: int = Field(description="Units in the whole job.")
    updated_at: datetime = Field(description="When the job last reported.")

    @computed_field(description="done / total (0 to 1); null when total is 0.")  # type: ignore[prop-decorator]
    @property
    def fraction(self) -> float | None:
        return round(self.done / self.total, 4) if self.total > 0 else None

    @classmethod
    def from_hash(cls, fields: dict[str, str]) -> JobProgress | None:
        """The ``{prefix}:progress:<id>`` hash, or None when the job never reported."""
        if not fields:
            return None
        return cls(
            done=int(fields["done"]),
            total=int(fields["total"]),
            updated_at=datetime.fromtimestamp(float(fields["updated_at"]), UTC),
        )


class Job(BaseModel):
    """A job's state, as stored in Redis and returned by ``GET /v1/jobs/{id}``."""

    id: str
    task: str
    queue: str
    status: JobStatus
    payload: dict[str, Any] = Field(default_factory=dict)
    attempts: int = 0
    max_attempts: int
    correlation_id: str | None = None
    idempotency_key: str | None = None
    traceparent: str | None = Field(
        default=None, description="The submitter's W3C trace context (`traceparent` header).")
    created_at: datetime
    updated_at: datetime
    not_before: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: Any = None
    error: JobError | None = None
    cancel_requested: bool = False
    consumer: str | None = Field(default=None, description="The replica running it.")
    then: list[FollowUp] = Field(default_factory=list, description="Follow-ups on success.")
    parent_id: str | None = Field(default=None, description="The job whose chain created it.")
    children: list[str] = Field(default_factory=list,
                                description="Jobs its chain created when it succeeded.")
    chain_error: str | None = Field(default=None,
                                    description="Why its follow-ups could not be created.")
    progress: JobProgress | None = Field(
        default=None,
        description="Its last progress report; null if it never reported. Filled by "
                    "GET /v1/jobs/{id} only (null in lists and in cancel/retry answers).",
    )

    @classmethod
    def from_hash(cls, fields: dict[str, str]) -> Job:
        def ts(name: str) -> datetime | None:
            raw = fields.get(name)
            return datetime.fromtimestamp(float(raw), UTC) if raw else None

        error = fields.get("error")
        return cls(
            id=fields["id"],
            task=fields["task"],
            queue=fields["queue"],
            status=JobStatus(fields["status"]),
            payload=json.loads(fields.get("payload") or "{}"),
            attempts=int(fields.get("attempts") or 0),
            max_attempts=int(fields["max_attempts"]),
            correlation_id=fields.get("correlation_id") or None,
            idempotency_key=fields.get("idempotency_key") or None,
            traceparent=fields.get("traceparent") or None,
            created_at=ts("created_at") or datetime.now(UTC),
            updated_at=ts("updated_at") or datetime.now(UTC),
            not_before=ts("not_before"),
            started_at=ts("started_at"),
            finished_at=ts("finished_at"),
            result=json.loads(fields["result"]) if fields.get("result") else None,
            error=JobError.model_validate_json(error) if error else None,
            cancel_requested=fields.get("cancel_requested") == "1",
            consumer=fields.get("consumer") or None,
            then=json.loads(fields.get("then") or "[]"),
            parent_id=fields.get("parent_id") or None,
            children=json.loads(fields.get("children") or "[]"),
            chain_error=fields.get("chain_error") or None,
        )


class JobAccepted(BaseModel):
    """The answer to a submission: 202 for a new job, 200 for a repeated idempotency key."""

    id: str
    status: JobStatus
    location: str
    duplicate: bool = False


class BatchAccepted(BaseModel):
    jobs: list[JobAccepted]


class JobPage(BaseModel):
    items: list[Job]
    next_cursor: str | None = None


class QueueStats(BaseModel):
    """One queue as an operator sees it (``GET /v1/queues``)."""

    queue: str
    length: int = Field(description="Entries in the stream not yet acknowledged.")
    pending: int = Field(description="Delivered to a replica, not yet acknowledged.")
    lag: int = Field(description="Waiting, not yet delivered to any replica.")
    oldest_waiting_s: float = Field(description="Age of the oldest undelivered entry.")
    delayed: int = Field(description="Scheduled (not_before) or waiting for a retry.")
    dead_lettered: int
    replicas: int = Field(description="Replicas that polled the queue in the last 15 s.")
    draining: bool = Field(default=False, description="Replicas take no new entries "
                           "(POST :drain); in-flight jobs finish; :resume undoes it.")
    operator_target: int | None = Field(
        default=None, description="Replicas an operator asked for (POST :scale), honoured "
        "within min/max by the autoscaler; null: the backlog decides.")
    min_replicas: int | None = Field(default=None, description="The pool's lower bound.")
    max_replicas: int | None = Field(
        default=None, description="The pool's upper bound (equal to min: a fixed count).")
