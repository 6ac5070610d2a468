"""The registry's behaviour as one async object: the rules (``WorkerRegistry``) kept in
step with their Redis mirror. The Ray actor is a thin shell over it, so it is tested
without a cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from workers_core.clock import Clock
from workers_core.config import Settings
from workers_core.registry.core import WorkerRegistry
from workers_core.registry.mirror import RegistryKeys, RegistryMirror
from workers_core.registry.models import Heartbeat, RegistryEvent, TagSummary, WorkerRecord

log = structlog.get_logger("workers_core.registry")

ChangeHook = Callable[[WorkerRegistry, list[TagSummary]], None]
"""Told of each change: the registry and the summaries of the tags it touched."""


class RegistryService:
    def __init__(self, registry: WorkerRegistry, mirror: RegistryMirror,
                 on_change: ChangeHook | None = None) -> None:
        self.registry = registry
        self.mirror = mirror
        self.on_change = on_change
        self._lock = asyncio.Lock()  # one writer: Redis sees changes in the order made
        self._mirrored_tags: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis, clock: Clock | None = None,
                      on_change: ChangeHook | None = None) -> RegistryService:
        registry = WorkerRegistry(
            ttl_s=settings.registry_worker_ttl_s,
            default_interval_s=settings.registry_heartbeat_interval_s,
            forget_after_s=settings.registry_forget_after_s,
            clock=clock,
        )
        mirror = RegistryMirror(
            redis, RegistryKeys(settings.registry_namespace),
            status_ttl_s=settings.registry_status_ttl_s,
            metrics_ttl_s=settings.registry_metrics_ttl_s,
        )
        return cls(registry, mirror, on_change)

    async def rebuild(self) -> int:
        """Load what the mirror holds (after a restart); returns the workers found."""
        records = await self.mirror.load()
        async with self._lock:
            self.registry.restore(records)
            self._mirrored_tags = set(self.registry.tags())
            self._changed(self.registry.summaries())
        return len(records)

    async def heartbeat(self, tag: str, hb: Heartbeat) -> WorkerRecord:
        async with self._lock:
            events = self.registry.heartbeat(tag, hb)
            summary = (await self._persist([tag], events))[tag]
            assert summary is not None
        return next(w for w in summary.workers if w.replica_id == hb.replica_id)

    async def unregister(self, tag: str, replica_id: str | None = None) -> list[RegistryEvent]:
        async with self._lock:
            events = self.registry.unregister(tag, replica_id)
            if events:
                await self._persist([tag], events)
        return events

    async def sweep(self) -> list[RegistryEvent]:
        """Judge silences and refresh every tag's keys (their TTLs outlive a live registry)."""
        async with self._lock:
            events = self.registry.sweep()
            tags = sorted(self._mirrored_tags | set(self.registry.tags()))
            await self._persist(tags, events)
        return events

    def summaries(self) -> list[TagSummary]:
        return self.registry.summaries()

    def summary(self, tag: str) -> TagSummary | None:
        return self.registry.summary(tag)

    async def _persist(self, tags: list[str],
                       events: list[RegistryEvent]) -> dict[str, TagSummary | None]:
        """Mirror ``tags`` and publish ``events``; returns the tags' summaries (None: gone)."""
        summaries = {tag: self.registry.summary(tag) for tag in tags}
        self._changed([s for s in summaries.values() if s is not None])
        try:
            await self.mirror.write(summaries, events)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            # The registry keeps working from memory; the next sweep writes it all again.
            log.warning("registry_mirror_unavailable", error=type(exc).__name__)
            return summaries
        self._mirrored_tags = set(self.registry.tags())
        for event in events:
            log.info("registry_event", **event.model_dump(mode="json"))
        return summaries

    def _changed(self, summaries: list[TagSummary]) -> None:
        if self.on_change is not None:
            self.on_change(self.registry, summaries)
