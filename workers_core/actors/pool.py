"""The pool deployment: each Serve replica is a Ray actor running one queue's consumer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from typing import Any

import structlog
from ray import serve

from workers_core.actors.consumer import QueueConsumer
from workers_core.actors.scaling import autoscaling_metrics
from workers_core.config import Settings, SettingsArgs, resolve_settings
from workers_core.jobs.store import JobStore
from workers_core.logs import configure_logging
from workers_core.registry.replica import ReplicaPresence
from workers_core.tasks.registry import TaskCatalog

log = structlog.get_logger("workers_core.pool")


def _consumer_name() -> str:
    """The replica's actor name (``SERVE_REPLICA::app#Pool_x#id``): unique, and what an
    operator needs to find (or ``ray.kill``) the replica that holds a job."""
    try:
        return str(serve.get_replica_context().replica_id.to_full_id_str())
    except Exception:  # outside Serve (direct use in a script)
        return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class QueuePool:
    """Serve deployment body (options are set by the app builder, per queue).

    Replicas take no HTTP traffic: they pull from the queue's stream. Serve gives them
    restarts, health checks, graceful shutdown and a place in the Ray dashboard.
    """

    # Serve runs async constructors on the replica's event loop.
    async def __init__(  # type: ignore[misc]
        self, given: Settings | SettingsArgs, queue: str
    ) -> None:
        settings = resolve_settings(given)
        configure_logging(settings.log_level, settings.log_json)
        self.settings = settings
        self.queue = queue
        spec = TaskCatalog.discover().queue_spec(queue, settings)
        self.store = JobStore.from_settings(settings)
        name = _consumer_name()
        self.consumer = QueueConsumer(self.store, spec, name)
        await self.consumer.start()
        self._loop_task = asyncio.get_running_loop().create_task(self.consumer.run_forever())
        self.presence = ReplicaPresence.for_pool(settings, self.consumer)  # health, heartbeat
        self.presence.start()
        log.info("pool_replica_started", queue=queue, consumer=name,
                 concurrency=spec.concurrency, resources=spec.resources.model_dump())

    async def ping(self) -> dict[str, Any]:
        """Cheap liveness plus what this replica is doing (readyz, /v1/queues)."""
        s = self.consumer.stats
        return {"queue": self.queue, "consumer": self.consumer.consumer,
                "in_flight": s.in_flight, "succeeded": s.succeeded, "failed": s.failed,
                "retried": s.retried, "loop_alive": not self._loop_task.done()}

    async def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve calls this on autoscaled pools: the backlog ``BacklogPolicy`` scales on, and
        an operator's replica target (POST :scale), which it honours within min/max."""
        return await autoscaling_metrics(self.store, self.queue)

    async def check_health(self) -> None:
        """Serve restarts a replica whose consumer loop has died or whose deep health check
        has failed for ``health_unhealthy_after_s`` (the last result: no probe inline)."""
        if self._loop_task.done():
            raise RuntimeError(f"consumer loop of {self.queue} stopped")
        if (reason := self.presence.unhealthy_reason()) is not None:
            raise RuntimeError(reason)

    async def __del__(self) -> None:
        await self.consumer.stop(self.settings.shutdown_grace_s)
        await self.presence.stop()  # unregister: graceful, so `stopped`, not `missing`
        self._loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._loop_task
        await self.store.close()
