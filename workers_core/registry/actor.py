"""``RegistryActor``: one named, detached Ray actor holding the registry; every Ray call
about it (creating, finding, calling) is in this module."""

from __future__ import annotations

import asyncio
from typing import Any

import ray
import structlog
from redis import asyncio as aioredis

from workers_core.config import Settings
from workers_core.registry.errors import RegistryUnavailable, UnknownWorkerTag
from workers_core.registry.models import Heartbeat, TagSummary, WorkerRecord
from workers_core.registry.service import RegistryService

log = structlog.get_logger("workers_core.registry")


def actor_name(settings: Settings) -> str:
    return f"{settings.registry_namespace}-registry"


class RegistryActor:
    """The actor's body. State is rebuilt from Redis on first use, so a restart (Ray
    ``max_restarts``, or the head with GCS fault tolerance) loses only unmirrored beats."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._service: RegistryService | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._init_lock = asyncio.Lock()

    async def _ready(self) -> RegistryService:
        if self._service is not None:
            return self._service
        async with self._init_lock:
            if self._service is None:
                from workers_core.registry.metrics import RegistryGauges

                redis = aioredis.from_url(self.settings.redis_url,
                                          **self.settings.redis_kwargs())
                service = RegistryService.from_settings(self.settings, redis,
                                                        on_change=RegistryGauges())
                try:
                    restored = await service.rebuild()
                    log.info("registry_rebuilt", workers=restored)
                except Exception as exc:  # Redis away: start empty; heartbeats refill it
                    log.warning("registry_rebuild_failed", error=type(exc).__name__)
                self._sweeper = asyncio.get_running_loop().create_task(
                    self._sweep_forever(service))
                self._service = service
        return self._service

    async def _sweep_forever(self, service: RegistryService) -> None:
        while True:
            await asyncio.sleep(self.settings.registry_sweep_interval_s)
            try:
                await service.sweep()
            except Exception:
                log.exception("registry_sweep_failed")

    async def ready(self) -> bool:
        await self._ready()
        return True

    async def heartbeat(self, tag: str, hb: Heartbeat) -> WorkerRecord:
        return await (await self._ready()).heartbeat(tag, hb)

    async def unregister(self, tag: str, replica_id: str | None = None) -> int:
        return len(await (await self._ready()).unregister(tag, replica_id))

    async def summaries(self) -> list[TagSummary]:
        return (await self._ready()).summaries()

    async def summary(self, tag: str) -> TagSummary | None:
        return (await self._ready()).summary(tag)


_RemoteRegistry: Any = ray.remote(RegistryActor)


def ensure_registry(settings: Settings) -> Any:
    """The registry actor's handle, created if it does not exist yet (safe to race)."""
    return _RemoteRegistry.options(
        name=actor_name(settings),
        namespace=settings.registry_ray_namespace,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,
        max_restarts=-1,
        max_concurrency=1000,
    ).remote(settings)


class RayRegistryLink:
    """Calls the registry actor with a timeout; a failed call drops the handle, so the next
    one finds (or recreates) the actor. Errors surface as ``RegistryUnavailable``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._handle: Any = None

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            if self._handle is None:
                self._handle = await asyncio.to_thread(ensure_registry, self.settings)
            ref = getattr(self._handle, method).remote(*args)
            return await asyncio.wait_for(ref, self.settings.registry_call_timeout_s)
        except Exception as exc:
            self._handle = None
            raise RegistryUnavailable(
                f"the worker registry did not answer: {type(exc).__name__}") from exc

    async def ready(self) -> None:
        await self._call("ready")

    async def heartbeat(self, tag: str, hb: Heartbeat) -> WorkerRecord:
        record: WorkerRecord = await self._call("heartbeat", tag, hb)
        return record

    async def unregister(self, tag: str, replica_id: str | None = None) -> int:
        count: int = await self._call("unregister", tag, replica_id)
        return count

    async def summaries(self) -> list[TagSummary]:
        found: list[TagSummary] = await self._call("summaries")
        return found

    async def summary(self, tag: str) -> TagSummary:
        found: TagSummary | None = await self._call("summary", tag)
        if found is None:
            raise UnknownWorkerTag(f"no worker is registered under {tag!r}", tag=tag)
        return found
