"""``POST /v1/queues/{queue}:drain|:resume|:scale``: an operator's hold on a pool.

Scope ``ops:admin`` and audited (``security/policy.py``). Each answers the queue's stats as
``GET /v1/queues`` shows them, so a caller sees the effect without a second call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from workers_core.errors import WorkersError
from workers_core.jobs.models import QueueStats
from workers_core.jobs.pool_controls import PoolControls, ReplicaBounds, UnknownQueue

if TYPE_CHECKING:
    from workers_core.deployments.api import GatewayState


class ScaleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replicas: int | None = Field(
        ge=1, description="Replicas wanted, within the pool's min/max; null hands the pool "
        "back to its backlog rule.")


Queue = Annotated[str, Path(max_length=200, description="A queue served by a pool.")]
ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no pool serves this queue"},
    503: {"description": "Redis unreachable"},
}


def _state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


def pool_bounds(state: GatewayState, queue: str) -> ReplicaBounds:
    """The pool's replica range as this gateway's settings deploy it; 404 for no pool."""
    try:
        return ReplicaBounds.of(state.catalog.queue_spec(queue, state.settings))
    except WorkersError:
        raise UnknownQueue(f"no pool serves queue {queue!r}; known queues: "
                           + ", ".join(state.catalog.queues()), queue=queue) from None


def with_bounds(state: GatewayState, stats: Sequence[QueueStats]) -> list[QueueStats]:
    """Queue stats with their pool's min/max (left empty for queues no task type uses)."""
    known = set(state.catalog.queues())
    out = []
    for s in stats:
        if s.queue in known:
            bounds = pool_bounds(state, s.queue)
            s = s.model_copy(update={"min_replicas": bounds.low, "max_replicas": bounds.high})
        out.append(s)
    return out


async def _answer(state: GatewayState, queue: str) -> QueueStats:
    [stats] = with_bounds(state, await state.store.queue_stats([queue]))
    return stats


def install_pool_routes(app: FastAPI, state: GatewayState) -> None:
    controls = PoolControls(state.store.redis, state.store.keys)

    @app.post("/v1/queues/{queue}:drain", tags=["queues"], responses=ANSWERS)
    async def drain(queue: Queue) -> QueueStats:
        """Replicas take no new jobs from the stream (each at its next step, within
        `WORKERS_READ_BLOCK_MS`); in-flight jobs finish; new submissions wait queued."""
        pool_bounds(state, queue)
        await controls.drain(queue)
        return await _answer(state, queue)

    @app.post("/v1/queues/{queue}:resume", tags=["queues"], responses=ANSWERS)
    async def resume(queue: Queue) -> QueueStats:
        """Undo `:drain`: replicas read the stream again."""
        pool_bounds(state, queue)
        await controls.resume(queue)
        return await _answer(state, queue)

    @app.post("/v1/queues/{queue}:scale", tags=["queues"], responses={
        **ANSWERS, 409: {"description": "the pool has a fixed replica count"},
        422: {"description": "replicas outside the pool's min/max (named in the answer)"}})
    async def scale(queue: Queue, body: ScaleRequest) -> QueueStats:
        """Ask an autoscaled pool for `replicas` within its min/max; Serve applies it within
        about 10 s (growing) or after the scale-down cooldown (shrinking). A pool with a
        fixed count answers 409: only a redeploy with other settings changes it."""
        await controls.set_target(queue, body.replicas, pool_bounds(state, queue))
        return await _answer(state, queue)
