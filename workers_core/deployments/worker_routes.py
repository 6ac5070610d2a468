"""`/v1/workers`: the worker registry over HTTP (list, one tag, outside heartbeats,
unregister). The routes only translate HTTP to registry calls."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import FastAPI, Path, Query, Request
from pydantic import BaseModel

from workers_core.registry.errors import RegistryUnavailable, UnknownWorkerTag
from workers_core.registry.models import (
    REPLICA_PATTERN,
    TAG_PATTERN,
    Heartbeat,
    TagSummary,
    WorkerRecord,
)


class RegistryClient(Protocol):
    """What the routes need from the registry (``RayRegistryLink`` in the platform)."""

    async def summaries(self) -> list[TagSummary]: ...

    async def summary(self, tag: str) -> TagSummary: ...

    async def heartbeat(self, tag: str, hb: Heartbeat) -> WorkerRecord: ...

    async def unregister(self, tag: str, replica_id: str | None = None) -> int: ...


class Unregistered(BaseModel):
    tag: str
    unregistered: int


Tag = Annotated[str, Path(pattern=TAG_PATTERN, description="The queue the workers consume.")]
UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: {"description": "the registry did not answer"}}


def _registry(request: Request) -> RegistryClient:
    registry: RegistryClient | None = request.app.state.gateway.registry
    if registry is None:
        raise RegistryUnavailable("this gateway has no worker registry")
    return registry


def install_worker_routes(app: FastAPI) -> None:
    @app.get("/v1/workers", tags=["workers"], responses=UNAVAILABLE)
    async def list_workers(request: Request) -> list[TagSummary]:
        """Every tag (queue) with its workers, their status, metrics, last deep health
        check and the tag's aggregate health score (0-100)."""
        return await _registry(request).summaries()

    @app.get("/v1/workers/{tag}", tags=["workers"],
             responses={404: {"description": "no worker under this tag"}, **UNAVAILABLE})
    async def get_workers(tag: Tag, request: Request) -> TagSummary:
        """One tag's workers and aggregate health score."""
        return await _registry(request).summary(tag)

    @app.patch("/v1/workers/{tag}/heartbeat", tags=["workers"],
               responses={422: {"description": "invalid heartbeat"}, **UNAVAILABLE})
    async def heartbeat(tag: Tag, hb: Heartbeat, request: Request) -> WorkerRecord:
        """A heartbeat from a worker outside Ray: the first registers it; send one every
        `interval_s` or it turns `missing` after the registry's TTL."""
        return await _registry(request).heartbeat(tag, hb)

    @app.delete("/v1/workers/{tag}", tags=["workers"],
                responses={404: {"description": "no registered worker under this tag"},
                           **UNAVAILABLE})
    async def unregister(
        tag: Tag,
        request: Request,
        replica_id: Annotated[str | None, Query(pattern=REPLICA_PATTERN,
                                                description="Only this worker.")] = None,
    ) -> Unregistered:
        """Mark the tag's workers (or one) `stopped`; they are forgotten later."""
        count = await _registry(request).unregister(tag, replica_id)
        if count == 0:
            raise UnknownWorkerTag(f"no registered worker under {tag!r}", tag=tag)
        return Unregistered(tag=tag, unregistered=count)
