"""What a pool replica runs beside its consumer: the deep health checks on their own
period and the heartbeat to the registry. Neither can stop the consumer."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from datetime import UTC, datetime

import structlog

from workers_core import __version__
from workers_core.actors.consumer import QueueConsumer
from workers_core.breaker import CircuitBreaker
from workers_core.config import Settings
from workers_core.registry.health import HealthMonitor
from workers_core.registry.heartbeat import HeartbeatLoop, RegistryLink
from workers_core.registry.metrics import heartbeat_latency
from workers_core.registry.models import Heartbeat, ReportedStatus, WorkerMetrics

log = structlog.get_logger("workers_core.registry")


def _node() -> str:
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # outside Ray
        return socket.gethostname()


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


class ReplicaPresence:
    def __init__(self, settings: Settings, consumer: QueueConsumer, link: RegistryLink,
                 *, node: str, health_endpoint: str | None) -> None:
        self.settings = settings
        self.consumer = consumer
        self.link = link
        self.node = node
        self.health_endpoint = health_endpoint
        self.monitor = HealthMonitor(
            consumer.health,
            timeout_s=settings.health_check_timeout_s,
            unhealthy_after_s=settings.health_unhealthy_after_s,
            breaker=CircuitBreaker(failure_threshold=settings.health_breaker_failures,
                                   reset_after_s=settings.health_breaker_reset_s),
        )
        self.heartbeats = HeartbeatLoop(
            link, consumer.queue, self.heartbeat,
            interval_s=settings.registry_heartbeat_interval_s,
            backoff_max_s=settings.registry_backoff_max_s,
            on_latency=functools.partial(heartbeat_latency, consumer.queue),  # no-op outside Ray
        )
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def for_pool(cls, settings: Settings, consumer: QueueConsumer) -> ReplicaPresence:
        """The Ray version: the registry actor as link, the replica's actor as endpoint."""
        from workers_core.registry.actor import RayRegistryLink
        return cls(settings, consumer, RayRegistryLink(settings), node=_node(),
                   health_endpoint=f"ray://serve/{consumer.consumer}")

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.monitor.run_forever(self.settings.health_check_interval_s)),
            loop.create_task(self.heartbeats.run_forever()),
        ]

    def unhealthy_reason(self) -> str | None:
        return self.monitor.unhealthy_reason()

    async def heartbeat(self) -> Heartbeat:
        """This replica now: consumer counters, queue size, the last deep check."""
        stats = self.consumer.stats
        queue_size = None
        with contextlib.suppress(Exception):  # Redis away: the heartbeat still goes
            [queue] = await self.consumer.store.queue_stats([self.consumer.queue])
            queue_size = queue.length
        health = self.monitor.last
        status = (ReportedStatus.ERROR if not health.ok else
                  ReportedStatus.RUNNING if stats.in_flight else ReportedStatus.IDLE)
        return Heartbeat(
            replica_id=self.consumer.consumer, node=self.node, version=__version__,
            status=status, health_endpoint=self.health_endpoint,
            interval_s=self.settings.registry_heartbeat_interval_s,
            metrics=WorkerMetrics(queue_size=queue_size, in_flight=stats.in_flight,
                                  last_task_at=_utc(stats.last_job_at),
                                  tasks_ok=stats.succeeded, tasks_failed=stats.failed),
            health=health,
        )

    async def stop(self) -> None:
        """Stop both loops and unregister (graceful shutdown); never raises."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        try:
            await self.link.unregister(self.consumer.queue, self.consumer.consumer)
        except Exception as exc:
            log.warning("unregister_failed", queue=self.consumer.queue,
                        error=type(exc).__name__)
