"""The HTTP API (FastAPI). Routes only translate HTTP to store calls; the store does the work."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from workers_core import __version__
from workers_core.artifacts import ArtifactMeta, ArtifactNotFound, ArtifactStore
from workers_core.config import Settings
from workers_core.deployments import audit_routes, auth, problems
from workers_core.deployments.completion import CompletionWaiter
from workers_core.deployments.event_routes import install_event_routes
from workers_core.deployments.http_metrics import install_http_metrics
from workers_core.deployments.schedule_routes import install_schedule_routes
from workers_core.deployments.webhook_routes import install_webhook_routes
from workers_core.deployments.worker_routes import RegistryClient, install_worker_routes
from workers_core.errors import InvalidPayload
from workers_core.jobs import chains
from workers_core.jobs.models import (
    BatchAccepted,
    BatchSubmission,
    Job,
    JobAccepted,
    JobPage,
    JobStatus,
    JobSubmission,
    QueueStats,
)
from workers_core.jobs.store import JobStore, NewJob
from workers_core.observability.trace_context import parse_traceparent
from workers_core.ops.page import install_ops_page
from workers_core.ops.pool_routes import install_pool_routes, with_bounds
from workers_core.tasks.registry import TaskCatalog


class PoolProbe(Protocol):
    async def __call__(self, queue: str, timeout_s: float) -> str | None:
        """None if the pool answers, else why not."""


@dataclass
class GatewayState:
    settings: Settings
    store: JobStore
    catalog: TaskCatalog
    waiter: CompletionWaiter
    artifacts: ArtifactStore | None = None
    probe_pool: PoolProbe | None = None
    queues: list[str] = field(default_factory=list)
    registry: RegistryClient | None = None


class TaskInfo(BaseModel):
    name: str
    queue: str
    max_attempts: int
    time_limit_s: float
    rate_limit: str | None
    payload_schema: dict[str, Any]
    result_schema: dict[str, Any]


def _state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


def resolve_submission(
    state: GatewayState, sub: JobSubmission, where: tuple[str | int, ...], idem: str | None,
    traceparent: str | None = None,
) -> NewJob:
    """Check the task exists and the payload fits its model: 404 / 422 before anything."""
    task = state.catalog.get(sub.task)
    try:
        task.Payload.model_validate(sub.payload)
    except ValidationError as exc:
        errors = problems.field_errors(exc.errors(), prefix=(*where, "payload"))
        raise InvalidPayload(
            f"payload does not match {sub.task}: " + ", ".join(e["field"] for e in errors),
            errors=errors,
        ) from None
    if sub.then:
        chain_errors = chains.check_follow_ups(state.catalog, sub.then, (*where, "then"))
        if chain_errors:
            raise InvalidPayload(
                "invalid follow-up jobs: " + ", ".join(e["field"] for e in chain_errors),
                errors=chain_errors,
            )
    return NewJob(
        submission=sub,
        queue=task.queue,
        max_attempts=sub.max_attempts or task.retry.max_attempts,
        idempotency_key=idem,
        traceparent=traceparent,
    )


TRACEPARENT_DOC = ("W3C trace context of the caller; stored on the job, carried into its "
                   "log lines and CloudEvents. An invalid value is ignored (W3C: start anew).")


def _trace_header(value: str | None) -> str | None:
    parsed = parse_traceparent(value)
    return parsed.header if parsed else None


def _accepted(job_id: str, duplicate: bool) -> JobAccepted:
    return JobAccepted(
        id=job_id, status=JobStatus.QUEUED, location=f"/v1/jobs/{job_id}", duplicate=duplicate
    )


def create_api(state: GatewayState) -> FastAPI:
    """The FastAPI app over one gateway's state (store, catalog, settings)."""
    app = FastAPI(
        title="workers-core",
        version=__version__,
        summary="Durable jobs on Ray pools: documents, OCR, ANAF and REGES work.",
        docs_url="/docs",
        openapi_url="/openapi.json",
        max_body_size=state.settings.max_body_bytes,  # 413 past it, announced or streamed
    )
    app.state.gateway = state
    problems.install(app)
    auth.install(app, state.settings, state.store.redis)  # before any route
    install_http_metrics(app)
    _health_routes(app)
    _job_routes(app)
    _queue_routes(app)
    _artifact_routes(app, state.settings.artifact_max_bytes)
    install_worker_routes(app)
    audit_routes.install(app)
    install_event_routes(app, state)
    install_webhook_routes(app, state)
    install_schedule_routes(app, state, resolve_submission)
    install_pool_routes(app, state)
    install_ops_page(app)
    return app


def _health_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the gateway process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "not ready"}})
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: Redis answers and every pool has a live replica."""
        state = _state(request)
        checks: dict[str, str] = {}
        try:
            await state.store.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {exc}"
        if state.probe_pool is not None:
            results = await asyncio.gather(
                *(state.probe_pool(q, 2.0) for q in state.queues)
            )
            for queue, problem in zip(state.queues, results, strict=True):
                checks[f"pool:{queue}"] = problem or "ok"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "not-ready", "checks": checks},
                            status_code=200 if ready else 503)


def _job_routes(app: FastAPI) -> None:
    @app.get("/v1/tasks", tags=["tasks"])
    async def list_tasks(request: Request) -> list[TaskInfo]:
        """Every task type this platform accepts, with its payload schema."""
        catalog = _state(request).catalog
        return [TaskInfo.model_validate(catalog.get(n).describe()) for n in catalog.names()]

    @app.post("/v1/jobs", status_code=202, tags=["jobs"],
              responses={200: {"description": "repeat of an Idempotency-Key"},
                         404: {"description": "unknown task"},
                         409: {"description": "Idempotency-Key reused for another request"},
                         413: {"description": "body too large"},
                         422: {"description": "invalid payload"},
                         503: {"description": "Redis unreachable; nothing stored"}})
    async def submit(
        sub: JobSubmission,
        request: Request,
        response: Response,
        idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
        traceparent: Annotated[str | None, Header(description=TRACEPARENT_DOC)] = None,
    ) -> JobAccepted:
        """Accept one job: 202 once it is stored in Redis, with its id and Location."""
        state = _state(request)
        new_job = resolve_submission(state, sub, (), idempotency_key or sub.idempotency_key,
                                     _trace_header(traceparent))
        [stored] = await state.store.submit_many([new_job])
        accepted = _accepted(stored.id, stored.duplicate)
        response.headers["Location"] = accepted.location
        if stored.duplicate:
            response.status_code = 200
        return accepted

    @app.post("/v1/jobs:batch", status_code=202, tags=["jobs"])
    async def submit_batch(
        batch: BatchSubmission,
        request: Request,
        traceparent: Annotated[str | None, Header(description=TRACEPARENT_DOC)] = None,
    ) -> BatchAccepted:
        """Accept up to `max_batch_size` jobs in one Redis round trip; all or none."""
        state = _state(request)
        if len(batch.jobs) > state.settings.max_batch_size:
            raise InvalidPayload(
                f"a batch holds at most {state.settings.max_batch_size} jobs",
                errors=[{"field": "jobs", "message": "too many jobs", "type": "too_long"}],
            )
        resolved = [
            resolve_submission(state, sub, ("jobs", i), sub.idempotency_key,
                               _trace_header(traceparent))
            for i, sub in enumerate(batch.jobs)
        ]
        stored = await state.store.submit_many(resolved)
        return BatchAccepted(jobs=[_accepted(s.id, s.duplicate) for s in stored])

    @app.get("/v1/jobs/{job_id}", tags=["jobs"])
    async def get_job(
        job_id: str,
        request: Request,
        wait: Annotated[float, Query(ge=0, le=60, description="Long-poll up to N s.")] = 0,
    ) -> Job:
        """A job's status, attempts, timestamps, its result or error, and its last progress
        report (`progress`: done of total, when the task reports it)."""
        state = _state(request)
        job = await state.store.get(job_id, with_progress=True)
        deadline = time.monotonic() + min(wait, state.settings.max_wait_s)
        while not job.status.terminal and (left := deadline - time.monotonic()) > 0:
            await state.waiter.wait(job_id, min(left, 2.0))
            job = await state.store.get(job_id, with_progress=True)
        return job

    @app.get("/v1/jobs", tags=["jobs"])
    async def list_jobs(
        request: Request,
        task: str | None = None,
        status: JobStatus | None = None,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> JobPage:
        """Newest first; pass `next_cursor` back as `cursor` for the next page."""
        return await _state(request).store.list_jobs(task, status, cursor, limit)

    @app.post("/v1/jobs/{job_id}:cancel", tags=["jobs"],
              responses={202: {"description": "running: cancellation requested"}})
    async def cancel_job(job_id: str, request: Request, response: Response) -> Job:
        """Cancel a queued, scheduled or retrying job; a running one is asked to stop."""
        job = await _state(request).store.cancel(job_id)
        if not job.status.terminal:
            response.status_code = 202
        return job

    @app.post("/v1/jobs/{job_id}:retry", status_code=202, tags=["jobs"])
    async def retry_job(job_id: str, request: Request) -> Job:
        """Queue a failed or dead-lettered job again; its attempt budget is granted again."""
        return await _state(request).store.requeue(job_id)


def _queue_routes(app: FastAPI) -> None:
    @app.get("/v1/queues", tags=["queues"])
    async def list_queues(request: Request) -> list[QueueStats]:
        """Per queue: length, pending, lag, delayed, dead-lettered, live replicas, and the
        pool's bounds, drain flag and operator target."""
        state = _state(request)
        queues = sorted(set(state.queues) | set(await state.store.known_queues()))
        return with_bounds(state, await state.store.queue_stats(queues))



def _artifacts(request: Request) -> ArtifactStore:
    store = _state(request).artifacts
    if store is None:
        raise ArtifactNotFound("this gateway keeps no artifacts")
    return store


def _safe_filename(name: str | None) -> str | None:
    """A bare file name (no path, no control characters, no quotes), or None."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if c.isprintable() and c not in '"<>|')[:255]
    return cleaned or None


def _artifact_routes(app: FastAPI, max_bytes: int) -> None:
    @app.post("/v1/artifacts", status_code=201, tags=["artifacts"],
              max_body_size=max_bytes + 65536,  # multipart overhead on top of the file
              responses={413: {"description": "over WORKERS_ARTIFACT_MAX_BYTES"}})
    async def upload_artifact(request: Request, response: Response) -> ArtifactMeta:
        """Store a binary (multipart field `file`, or the raw body with its Content-Type and
        an optional `X-Filename`); jobs then reference it by the returned id."""
        content_type = request.headers.get("content-type", "application/octet-stream")
        filename: str | None = None
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidPayload("multipart upload needs a file field named 'file'",
                                     errors=[{"field": "file", "message": "missing",
                                              "type": "missing"}])
            data = await upload.read()
            content_type = upload.content_type or "application/octet-stream"
            filename = _safe_filename(upload.filename)
        else:
            data = await request.body()
            filename = _safe_filename(request.headers.get("x-filename"))
        meta = await _artifacts(request).put(data, content_type, filename)
        response.headers["Location"] = f"/v1/artifacts/{meta.id}"
        return meta

    @app.get("/v1/artifacts/{artifact_id}", tags=["artifacts"],
             response_class=Response, responses={200: {"content": {"*/*": {}}}})
    async def download_artifact(artifact_id: str, request: Request) -> Response:
        """The artifact's bytes with its content type (ETag: its sha256)."""
        meta, data = await _artifacts(request).get(artifact_id)
        headers = {"ETag": f'"{meta.sha256}"'}
        if meta.filename:
            headers["Content-Disposition"] = f'attachment; filename="{meta.filename}"'
        return Response(data, media_type=meta.content_type, headers=headers)

    @app.get("/v1/artifacts/{artifact_id}/meta", tags=["artifacts"])
    async def artifact_meta(artifact_id: str, request: Request) -> ArtifactMeta:
        """Size, content type, sha256 and expiry of an artifact."""
        return await _artifacts(request).meta(artifact_id)
