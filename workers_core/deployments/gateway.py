"""The gateway deployment: the FastAPI ingress, hosted by Serve, with handles to the pools."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from workers_core.artifacts import artifact_store_from_settings
from workers_core.config import Settings
from workers_core.deployments.api import GatewayState, create_api
from workers_core.deployments.completion import CompletionWaiter
from workers_core.jobs.store import JobStore
from workers_core.logs import configure_logging
from workers_core.tasks.registry import TaskCatalog


@serve.ingress()
class Gateway:
    """Builds its FastAPI app at replica start (``__serve_build_asgi_app__``), over state
    that belongs to this replica: its Redis pool, the task catalog and the pool handles."""

    async def __init__(  # type: ignore[misc]
        self, settings: Settings, pools: dict[str, DeploymentHandle[Any]]
    ) -> None:
        configure_logging(settings.log_level, settings.log_json)
        self.pools = pools
        store = JobStore.from_settings(settings)
        self.state = GatewayState(
            settings=settings,
            store=store,
            catalog=TaskCatalog.discover(),
            waiter=CompletionWaiter(store.redis, store.keys.done_channel),
            artifacts=artifact_store_from_settings(settings),
            probe_pool=self._probe_pool,
            queues=sorted(pools),
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_api(self.state)

    async def _probe_pool(self, queue: str, timeout_s: float) -> str | None:
        try:
            reply: Any = await asyncio.wait_for(self.pools[queue].ping.remote(), timeout_s)
        except Exception as exc:
            return f"error: {type(exc).__name__}"
        return None if reply.get("loop_alive") else "consumer loop stopped"
