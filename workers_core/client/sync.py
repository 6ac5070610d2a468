"""``WorkersClient``: the blocking SDK (scripts, notebooks, producers in web apps)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from workers_core.artifacts import ArtifactMeta
from workers_core.breaker import CircuitBreaker
from workers_core.client import ops
from workers_core.client.core import Call, ClientCore, RetryConfig
from workers_core.client.errors import ClientError
from workers_core.jobs.models import (
    FollowUp,
    Job,
    JobAccepted,
    JobStatus,
    JobSubmission,
    QueueStats,
)
from workers_core.jobs.schedules import Schedule
from workers_core.registry.models import TagSummary

T = TypeVar("T")


class WorkersClient:
    """Talks to one platform over HTTP; retries what is safe to retry, fails fast when the
    platform is down (circuit breaker), raises typed errors (``workers_core.client.errors``).

    >>> with WorkersClient("http://127.0.0.1:8000") as wc:
    ...     job = wc.wait(wc.submit("debug.echo", {"value": 1}).id, timeout=30)
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
        retry: RetryConfig | None = None,
        breaker: CircuitBreaker | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = ClientCore(base_url, token, timeout_s, retry or RetryConfig(),
                               breaker or CircuitBreaker())
        self._http = httpx.Client(transport=transport, **self.core.client_kwargs())
        self._sleep = sleep
        self._monotonic = monotonic

    def __enter__(self) -> WorkersClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call) -> httpx.Response:
        retries = 0
        while True:
            self.core.before_call()
            error: ClientError | None
            try:
                response = self._http.request(call.method, call.path,
                                              **self.core.request_kwargs(call))
            except httpx.TransportError as exc:
                error = self.core.transport_error(exc)
            else:
                error = self.core.outcome(call, response)
                if error is None:
                    return response
            delay = self.core.retry_delay(call, error, retries)
            if delay is None:
                raise error
            self._sleep(delay)
            retries += 1

    def _drive(self, op: ops.Op[T]) -> T:
        try:
            call = next(op)
            while True:
                call = op.send(self._send(call))
        except StopIteration as done:
            result: T = done.value
            return result

    # -- jobs -------------------------------------------------------------------------------

    def submit(self, task: str, payload: Mapping[str, Any] | None = None, *,
               not_before: datetime | float | None = None, max_attempts: int | None = None,
               correlation_id: str | None = None, idempotency_key: str | None = None,
               then: Sequence[FollowUp | Mapping[str, Any]] = ()) -> JobAccepted:
        """Store one job (``then``: follow-ups on success); resending after a lost answer
        returns the same job."""
        return self._drive(ops.submit(
            self.core, task, payload, not_before=not_before, max_attempts=max_attempts,
            correlation_id=correlation_id, idempotency_key=idempotency_key, then=then))

    def submit_many(self, jobs: Iterable[JobSubmission | Mapping[str, Any]]) -> list[JobAccepted]:
        """Store many jobs: one request, and one Redis round trip, per 1,000."""
        return self._drive(ops.submit_many(self.core, jobs))

    def get(self, job_id: str) -> Job:
        return self._drive(ops.get(job_id))

    def wait(self, job_id: str, timeout: float | None = None, poll_s: float = 60.0) -> Job:
        """The finished job; ``WaitTimeout`` after ``timeout`` seconds (None: no limit)."""
        return self._drive(ops.wait(self.core, job_id, timeout, poll_s, self._monotonic))

    def run(self, task: str, payload: Mapping[str, Any] | None = None, *,
            timeout: float | None = None, **options: Any) -> Any:
        """Submit, wait, return the result; ``JobFailed`` unless the job succeeded."""
        return self._drive(ops.run(self.core, task, payload, timeout, self._monotonic, options))

    def cancel(self, job_id: str) -> Job:
        return self._drive(ops.cancel(job_id))

    def retry(self, job_id: str) -> Job:
        """Queue a failed or dead-lettered job again."""
        return self._drive(ops.retry(job_id))

    def jobs(self, *, task: str | None = None, status: JobStatus | str | None = None,
             limit: int | None = None, page_size: int = 100) -> Iterator[Job]:
        """Newest first, following cursors page by page."""
        cursor: str | None = None
        seen = 0
        while True:
            page = self._drive(ops.page(task, status, cursor, page_size))
            for job in page.items:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield job
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # -- schedules (recurring jobs) -----------------------------------------------------------

    def put_schedule(self, schedule_id: str, cron: str, task: str,
                     payload: Mapping[str, Any] | None = None, *, replace: bool = False,
                     timezone: str | None = None, **options: Any) -> Schedule:
        """Register a recurring job (``replace``: create or replace; else 409 if the id
        exists). ``options``: max_attempts, correlation_id, then, paused, start_at, end_at,
        misfire_grace_s, description."""
        spec = {"cron": cron, "task": task, "payload": dict(payload or {}),
                "timezone": timezone, **options}
        return self._drive(ops.put_schedule(schedule_id, spec, replace))

    def schedules(self, page_size: int = 100) -> Iterator[Schedule]:
        """Every schedule, by id."""
        cursor: str | None = None
        while True:
            page = self._drive(ops.schedule_page(cursor, page_size))
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_schedule(self, schedule_id: str, preview: int | None = None) -> Schedule:
        """With its next ``preview`` fire times and its recent fires (job ids)."""
        return self._drive(ops.get_schedule(schedule_id, preview))

    def pause_schedule(self, schedule_id: str) -> Schedule:
        return self._drive(ops.schedule_action(schedule_id, "pause"))

    def resume_schedule(self, schedule_id: str) -> Schedule:
        return self._drive(ops.schedule_action(schedule_id, "resume"))

    def trigger_schedule(self, schedule_id: str, idempotency_key: str | None = None
                         ) -> JobAccepted:
        """One job now, outside the cron; resending returns the same job."""
        key = idempotency_key or f"sdk-{uuid.uuid4()}"
        return self._drive(ops.trigger_schedule(schedule_id, key))

    def delete_schedule(self, schedule_id: str) -> None:
        self._drive(ops.delete_schedule(schedule_id))

    # -- platform and artifacts -------------------------------------------------------------

    def queues(self) -> list[QueueStats]:
        return self._drive(ops.queues())

    def drain(self, queue: str) -> QueueStats:
        """The pool takes no new jobs; in-flight ones finish (``resume`` undoes it)."""
        return self._drive(ops.pool_action(queue, "drain"))

    def resume(self, queue: str) -> QueueStats:
        return self._drive(ops.pool_action(queue, "resume"))

    def scale(self, queue: str, replicas: int | None) -> QueueStats:
        """Ask an autoscaled pool for ``replicas`` within its min/max; None: backlog rule."""
        return self._drive(ops.pool_action(queue, "scale", {"replicas": replicas}))

    def workers(self, tag: str | None = None) -> list[TagSummary]:
        """The worker registry: every tag (or one) with its workers and health score."""
        return self._drive(ops.workers()) if tag is None else [self._drive(ops.workers_of(tag))]

    def tasks(self) -> list[dict[str, Any]]:
        """Task types with their payload and result JSON schemas."""
        result: list[dict[str, Any]] = self._drive(ops.get_json("/v1/tasks"))
        return result

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._drive(ops.get_json("/healthz"))
        return result

    def ready(self) -> dict[str, Any]:
        """Readiness checks; an unready platform raises ``Unavailable`` (503)."""
        result: dict[str, Any] = self._drive(ops.get_json("/readyz"))
        return result

    def upload(self, data: bytes | Path, content_type: str = "application/octet-stream",
               filename: str | None = None) -> ArtifactMeta:
        """Store a binary for jobs to reference by id."""
        return self._drive(ops.upload(data, content_type, filename))

    def download(self, artifact_id: str) -> bytes:
        return self._drive(ops.download(artifact_id))
