"""``/v1/schedules``: recurring jobs. A schedule's task and payload are checked exactly as
``POST /v1/jobs`` checks a job (the gateway's own resolution is passed in), so a schedule
that is accepted makes jobs that are accepted."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Header, Path, Query, Response

from workers_core.jobs.models import JobAccepted, JobStatus, JobSubmission
from workers_core.jobs.scheduler import fire_now
from workers_core.jobs.schedules import (
    SCHEDULE_ID_PATTERN,
    Schedule,
    ScheduleCreate,
    SchedulePage,
    ScheduleSpec,
    ScheduleStore,
)
from workers_core.jobs.store import NewJob

if TYPE_CHECKING:
    from workers_core.deployments.api import GatewayState

GatewayResolve = Callable[
    ["GatewayState", JobSubmission, tuple[str | int, ...], str | None], NewJob
]
ScheduleId = Annotated[str, Path(pattern=SCHEDULE_ID_PATTERN, description="The schedule's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such schedule"}}


def install_schedule_routes(app: FastAPI, state: GatewayState, resolve: GatewayResolve) -> None:
    """Add the schedule routes over ``state``; ``resolve`` is the gateway's job check."""
    settings = state.settings
    store = ScheduleStore(state.store, settings.schedule_history_len)

    def resolve_job(sub: JobSubmission, key: str) -> NewJob:
        return resolve(state, sub, (), key)

    def checked(spec: ScheduleSpec) -> ScheduleSpec:
        """The spec with its zone filled in, its task and payload checked (404 / 422)."""
        resolve(state, spec.job_submission(), (), None)
        return spec.resolved(settings.schedule_timezone)

    async def answer(schedule_id: str, response: Response, created: bool) -> Schedule:
        response.status_code = 201 if created else 200
        response.headers["Location"] = f"/v1/schedules/{schedule_id}"
        return await store.get(schedule_id, settings.schedule_preview)

    @app.post("/v1/schedules", status_code=201, tags=["schedules"],
              responses={404: {"description": "unknown task"},
                         409: {"description": "the id exists (PUT replaces)"},
                         422: {"description": "invalid cron, zone, task payload…"}})
    async def create_schedule(body: ScheduleCreate, response: Response) -> Schedule:
        """Register a recurring job: one job per cron tick, however many gateways run."""
        await store.put(body.id, checked(body.spec()), "create")
        return await answer(body.id, response, created=True)

    @app.put("/v1/schedules/{schedule_id}", tags=["schedules"],
             responses={201: {"description": "created"}, 200: {"description": "replaced"}})
    async def put_schedule(schedule_id: ScheduleId, body: ScheduleSpec,
                           response: Response) -> Schedule:
        """Create or replace; the next tick counts from now, the fire history stays."""
        created = await store.put(schedule_id, checked(body), "put")
        return await answer(schedule_id, response, created)

    @app.get("/v1/schedules", tags=["schedules"])
    async def list_schedules(
        cursor: Annotated[str | None, Query(max_length=128)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> SchedulePage:
        """By id; pass `next_cursor` back as `cursor` for the next page."""
        return await store.page(cursor, limit)

    @app.get("/v1/schedules/{schedule_id}", tags=["schedules"], responses=NOT_FOUND)
    async def get_schedule(
        schedule_id: ScheduleId,
        preview: Annotated[int | None, Query(ge=0, le=100)] = None,
    ) -> Schedule:
        """The schedule, its next fire times (`upcoming`) and its recent fires with job ids."""
        count = settings.schedule_preview if preview is None else preview
        return await store.get(schedule_id, count)

    @app.post("/v1/schedules/{schedule_id}:pause", tags=["schedules"], responses=NOT_FOUND)
    async def pause_schedule(schedule_id: ScheduleId) -> Schedule:
        """Stop firing; ticks while paused are not caught up on resume."""
        await store.set_paused(schedule_id, paused=True)
        return await store.get(schedule_id, 0)

    @app.post("/v1/schedules/{schedule_id}:resume", tags=["schedules"], responses=NOT_FOUND)
    async def resume_schedule(schedule_id: ScheduleId) -> Schedule:
        """Fire again from the next tick after now."""
        await store.set_paused(schedule_id, paused=False)
        return await store.get(schedule_id, settings.schedule_preview)

    @app.post("/v1/schedules/{schedule_id}:trigger", status_code=202, tags=["schedules"],
              responses={**NOT_FOUND, 200: {"description": "repeat of an Idempotency-Key"}})
    async def trigger_schedule(
        schedule_id: ScheduleId,
        response: Response,
        idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    ) -> JobAccepted:
        """Fire once now, outside the cron (paused or not); the next tick is unchanged."""
        submitted = await fire_now(store, state.store, resolve_job, schedule_id,
                                   idempotency_key)
        response.headers["Location"] = f"/v1/jobs/{submitted.id}"
        if submitted.duplicate:
            response.status_code = 200
        return JobAccepted(id=submitted.id, status=JobStatus.QUEUED,
                           location=f"/v1/jobs/{submitted.id}", duplicate=submitted.duplicate)

    @app.delete("/v1/schedules/{schedule_id}", status_code=204, tags=["schedules"],
                responses=NOT_FOUND)
    async def delete_schedule(schedule_id: ScheduleId) -> Response:
        """Remove it and its history; jobs it already made are untouched."""
        await store.delete(schedule_id)
        return Response(status_code=204)
