"""Each SDK operation written once, as a generator that yields the HTTP calls it needs and
receives their answers. The sync and async clients only drive these generators with their
own I/O, so the two can never drift apart."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from workers_core.artifacts import ArtifactMeta
from workers_core.client.core import Call, ClientCore
from workers_core.client.errors import JobFailed, WaitTimeout
from workers_core.jobs.models import (
    BatchAccepted,
    FollowUp,
    Job,
    JobAccepted,
    JobPage,
    JobStatus,
    JobSubmission,
    QueueStats,
)
from workers_core.jobs.schedules import Schedule, SchedulePage
from workers_core.registry.models import TagSummary

T = TypeVar("T")
Op = Generator[Call, httpx.Response, T]


def simple(call: Call, parse: Callable[[httpx.Response], T]) -> Op[T]:
    response = yield call
    return parse(response)


def _json(response: httpx.Response) -> Any:
    return response.json()


def submit(core: ClientCore, task: str, payload: Mapping[str, Any] | None, *,
           not_before: datetime | float | None = None, max_attempts: int | None = None,
           correlation_id: str | None = None, idempotency_key: str | None = None,
           then: Sequence[FollowUp | Mapping[str, Any]] = ()) -> Op[JobAccepted]:
    call = core.submit_call(task, payload, not_before=not_before, max_attempts=max_attempts,
                            correlation_id=correlation_id, idempotency_key=idempotency_key,
                            then=then)
    response = yield call
    return JobAccepted.model_validate(response.json())


def submit_many(core: ClientCore, jobs: Iterable[JobSubmission | Mapping[str, Any]]
                ) -> Op[list[JobAccepted]]:
    accepted: list[JobAccepted] = []
    for call in core.batch_calls(jobs):
        response = yield call
        accepted.extend(BatchAccepted.model_validate(response.json()).jobs)
    return accepted


def get(job_id: str) -> Op[Job]:
    return simple(Call("GET", f"/v1/jobs/{job_id}"), lambda r: Job.model_validate(r.json()))


def wait(core: ClientCore, job_id: str, timeout: float | None, poll_s: float,
         monotonic: Callable[[], float]) -> Op[Job]:
    """Long-polls of up to ``poll_s`` until the job is finished or ``timeout`` has passed."""
    deadline = None if timeout is None else monotonic() + timeout
    while True:
        left = poll_s if deadline is None else min(poll_s, deadline - monotonic())
        response = yield core.wait_call(job_id, max(left, 0.0))
        job = Job.model_validate(response.json())
        if job.status.terminal:
            return job
        if deadline is not None and monotonic() >= deadline:
            raise WaitTimeout(job, timeout or 0.0)


def run(core: ClientCore, task: str, payload: Mapping[str, Any] | None, timeout: float | None,
        monotonic: Callable[[], float], options: dict[str, Any]) -> Op[Any]:
    accepted = yield from submit(core, task, payload, **options)
    job = yield from wait(core, accepted.id, timeout, 60.0, monotonic)
    if job.status is not JobStatus.SUCCEEDED:
        raise JobFailed(job)
    return job.result


def cancel(job_id: str) -> Op[Job]:
    return simple(Call("POST", f"/v1/jobs/{job_id}:cancel"),
                  lambda r: Job.model_validate(r.json()))


def retry(job_id: str) -> Op[Job]:
    return simple(Call("POST", f"/v1/jobs/{job_id}:retry"),
                  lambda r: Job.model_validate(r.json()))


def page(task: str | None, status: JobStatus | str | None, cursor: str | None,
         page_size: int) -> Op[JobPage]:
    params = {"task": task, "status": status, "cursor": cursor, "limit": page_size}
    return simple(Call("GET", "/v1/jobs", params=params),
                  lambda r: JobPage.model_validate(r.json()))


def queues() -> Op[list[QueueStats]]:
    return simple(Call("GET", "/v1/queues"),
                  lambda r: [QueueStats.model_validate(q) for q in r.json()])


def pool_action(queue: str, action: str, body: Mapping[str, Any] | None = None
                ) -> Op[QueueStats]:
    """``drain``, ``resume`` or ``scale`` a queue's pool (each safe to repeat)."""
    return simple(Call("POST", f"/v1/queues/{queue}:{action}", json=body, replay_safe=True),
                  lambda r: QueueStats.model_validate(r.json()))


def workers() -> Op[list[TagSummary]]:
    return simple(Call("GET", "/v1/workers"),
                  lambda r: [TagSummary.model_validate(t) for t in r.json()])


def workers_of(tag: str) -> Op[TagSummary]:
    return simple(Call("GET", f"/v1/workers/{tag}"),
                  lambda r: TagSummary.model_validate(r.json()))


def get_json(path: str) -> Op[Any]:
    return simple(Call("GET", path), _json)


def upload(data: bytes | Path, content_type: str, filename: str | None) -> Op[ArtifactMeta]:
    if isinstance(data, Path):
        filename = filename or data.name
        data = data.read_bytes()
    headers = {"Content-Type": content_type}
    if filename:
        headers["X-Filename"] = filename
    return simple(Call("POST", "/v1/artifacts", content=data, headers=headers),
                  lambda r: ArtifactMeta.model_validate(r.json()))


def download(artifact_id: str) -> Op[bytes]:
    return simple(Call("GET", f"/v1/artifacts/{artifact_id}"), lambda r: r.content)


def put_schedule(schedule_id: str, spec: Mapping[str, Any], replace: bool) -> Op[Schedule]:
    """POST (409 if the id exists) or, with ``replace``, PUT (create or replace)."""
    body = {k: _plain(v) for k, v in spec.items() if v is not None}
    call = (Call("PUT", f"/v1/schedules/{schedule_id}", json=body) if replace else
            Call("POST", "/v1/schedules", json={"id": schedule_id, **body}))
    return simple(call, lambda r: Schedule.model_validate(r.json()))


def _plain(value: Any) -> Any:
    """Datetimes and models as JSON values (start_at, end_at, then)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, FollowUp):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def schedule_page(cursor: str | None, page_size: int) -> Op[SchedulePage]:
    return simple(Call("GET", "/v1/schedules", params={"cursor": cursor, "limit": page_size}),
                  lambda r: SchedulePage.model_validate(r.json()))


def get_schedule(schedule_id: str, preview: int | None = None) -> Op[Schedule]:
    params = {"preview": preview} if preview is not None else None
    return simple(Call("GET", f"/v1/schedules/{schedule_id}", params=params),
                  lambda r: Schedule.model_validate(r.json()))


def schedule_action(schedule_id: str, action: str) -> Op[Schedule]:
    """``pause`` or ``resume`` (both safe to repeat)."""
    return simple(Call("POST", f"/v1/schedules/{schedule_id}:{action}", replay_safe=True),
                  lambda r: Schedule.model_validate(r.json()))


def trigger_schedule(schedule_id: str, idempotency_key: str) -> Op[JobAccepted]:
    call = Call("POST", f"/v1/schedules/{schedule_id}:trigger",
                headers={"Idempotency-Key": idempotency_key}, replay_safe=True)
    return simple(call, lambda r: JobAccepted.model_validate(r.json()))


def delete_schedule(schedule_id: str) -> Op[None]:
    return simple(Call("DELETE", f"/v1/schedules/{schedule_id}"), lambda r: None)
