"""The gateway deployment: the FastAPI ingress, hosted by Serve, with handles to the pools."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from workers_core.artifacts import artifact_store_from_settings
from workers_core.config import Settings, SettingsArgs, resolve_settings
from workers_core.deployments.api import GatewayState, create_api, resolve_submission
from workers_core.deployments.completion import CompletionWaiter
from workers_core.events.dispatcher import WebhookDispatcher
from workers_core.jobs.scheduler import Scheduler
from workers_core.jobs.schedules import ScheduleStore
from workers_core.jobs.store import JobStore
from workers_core.logs import configure_logging
from workers_core.registry.actor import RayRegistryLink
from workers_core.registry.errors import RegistryUnavailable
from workers_core.tasks.registry import TaskCatalog


@serve.ingress()
class Gateway:
    """Builds its FastAPI app at replica start (``__serve_build_asgi_app__``), over state
    that belongs to this replica: its Redis pool, the task catalog and the pool handles."""

    async def __init__(  # type: ignore[misc]
        self, given: Settings | SettingsArgs, pools: dict[str, DeploymentHandle[Any]]
    ) -> None:
        settings = resolve_settings(given)
        configure_logging(settings.log_level, settings.log_json)
        self.pools = pools
        store = JobStore.from_settings(settings)
        registry = RayRegistryLink(settings)
        with contextlib.suppress(RegistryUnavailable):  # created now (get_if_exists); if it
            await registry.ready()  # fails, the routes answer 503 and try again per call
        self.state = GatewayState(
            settings=settings,
            store=store,
            catalog=TaskCatalog.discover(),
            waiter=CompletionWaiter(store.redis, store.keys.done_channel),
            artifacts=artifact_store_from_settings(settings),
            probe_pool=self._probe_pool,
            queues=sorted(pools),
            registry=registry,
        )
        # Webhook deliveries: one dispatcher per replica, sharing the events' consumer group.
        self.webhooks: WebhookDispatcher | None = None
        if settings.webhook_dispatcher_enabled:
            self.webhooks = WebhookDispatcher.from_settings(
                settings, store.redis, consumer=f"gateway-{socket.gethostname()}-{os.getpid()}")
            self.webhooks.start()
        # Recurring jobs: every replica runs the loop; each tick still makes one job.
        self.scheduler: Scheduler | None = None
        if settings.schedule_enabled:
            self.scheduler = Scheduler(
                ScheduleStore(store, settings.schedule_history_len), store,
                lambda sub, key: resolve_submission(self.state, sub, (), key), settings)
            self.scheduler.start()

    async def __del__(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_api(self.state)

    async def _probe_pool(self, queue: str, timeout_s: float) -> str | None:
        try:
            reply: Any = await asyncio.wait_for(self.pools[queue].ping.remote(), timeout_s)
        except Exception as exc:
            return f"error: {type(exc).__name__}"
        return None if reply.get("loop_alive") else "consumer loop stopped"
