"""An operator's hold on a queue's pool, kept in Redis so every replica and gateway sees it:
a drain flag (consumers take no new entries) and a replica target for autoscaled pools.

Both live in one hash per queue (``{prefix}:pool:<queue>``). Consumers read the flag with
their heartbeat at the start of each step (``JobStore.heartbeat``); the pool's replicas
report the target to Serve's autoscaling policy (``actors/scaling.py``), which clamps it to
the pool's bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from workers_core.errors import InvalidPayload, WorkersError
from workers_core.jobs.keys import POOL_DRAINING, POOL_TARGET_REPLICAS, RedisKeys
from workers_core.jobs.store import redis_errors_as_503
from workers_core.tasks.registry import QueueSpec


class UnknownQueue(WorkersError):
    """404: no task type uses this queue, so there is no pool to control."""

    status_code = 404
    problem_type = "unknown-queue"
    retryable = False


class PoolNotScalable(WorkersError):
    """409: the pool has a fixed replica count, which only a redeploy changes."""

    status_code = 409
    problem_type = "pool-not-scalable"
    retryable = False


@dataclass(frozen=True)
class ReplicaBounds:
    """A pool's replica range; ``low == high`` for a fixed count."""

    low: int
    high: int
    autoscaled: bool

    @classmethod
    def of(cls, spec: QueueSpec) -> ReplicaBounds:
        if spec.autoscaling is None:
            return cls(spec.replicas, spec.replicas, autoscaled=False)
        return cls(spec.autoscaling.min_replicas, spec.autoscaling.max_replicas, autoscaled=True)


def check_target(queue: str, replicas: int, bounds: ReplicaBounds) -> None:
    """409 for a fixed pool; 422 naming the bounds for a target outside them."""
    if not bounds.autoscaled:
        raise PoolNotScalable(
            f"pool {queue!r} has a fixed replica count ({bounds.low}): Serve keeps exactly "
            "that many; give the queue min_replicas < max_replicas (WORKERS_QUEUES) and "
            "redeploy to scale it from here", replicas=bounds.low)
    if not bounds.low <= replicas <= bounds.high:
        message = (f"must be between the pool's min_replicas ({bounds.low}) and "
                   f"max_replicas ({bounds.high})")
        raise InvalidPayload(
            f"replicas {replicas} is out of bounds: {message}",
            errors=[{"field": "replicas", "message": message, "type": "out_of_bounds"}],
            min_replicas=bounds.low, max_replicas=bounds.high)


class PoolControls:
    """Reads and writes the per-queue controls hash."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys) -> None:
        self.redis: Any = redis  # decode_responses=True: str replies
        self.keys = keys

    async def is_draining(self, queue: str) -> bool:
        async with redis_errors_as_503():
            return bool(await self.redis.hget(self.keys.pool_controls(queue), POOL_DRAINING)
                        == "1")

    async def drain(self, queue: str) -> None:
        """Replicas stop taking entries at their next step; in-flight jobs finish."""
        async with redis_errors_as_503():
            await self.redis.hset(self.keys.pool_controls(queue), POOL_DRAINING, "1")

    async def resume(self, queue: str) -> None:
        async with redis_errors_as_503():
            await self.redis.hdel(self.keys.pool_controls(queue), POOL_DRAINING)

    async def set_target(self, queue: str, replicas: int | None, bounds: ReplicaBounds) -> None:
        """Ask for ``replicas`` (checked against ``bounds``); None hands the pool back to its
        backlog rule."""
        key = self.keys.pool_controls(queue)
        async with redis_errors_as_503():
            if replicas is None:
                await self.redis.hdel(key, POOL_TARGET_REPLICAS)
                return
            check_target(queue, replicas, bounds)
            await self.redis.hset(key, POOL_TARGET_REPLICAS, str(replicas))
