"""The registry's copy in Redis, so other readers see it and a restarted registry rebuilds.

Keys (``ns`` is ``WORKERS_REGISTRY_NAMESPACE``, ``wrk`` by default):
``<ns>:registry:status:<tag>`` hash replica id -> WorkerRecord JSON (TTL 120 s),
``<ns>:registry:metrics:<tag>`` hash of the tag's aggregate (TTL 60 s), and events
published as JSON on ``<ns>:events``. Each write replaces its tags' keys whole and publishes
its events in one MULTI, so a reader never sees half an update.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from workers_core.registry.models import RegistryEvent, TagSummary, WorkerRecord, WorkerStatus


class RegistryKeys:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.events = f"{namespace}:events"

    def status(self, tag: str) -> str:
        return f"{self.namespace}:registry:status:{tag}"

    def metrics(self, tag: str) -> str:
        return f"{self.namespace}:registry:metrics:{tag}"


def tag_metrics(summary: TagSummary) -> dict[str, str]:
    """The aggregate mirrored in ``<ns>:registry:metrics:<tag>`` (flat, for any reader)."""
    live = [w for w in summary.workers if w.status not in (WorkerStatus.STOPPED,
                                                             WorkerStatus.MISSING)]
    last = max((w.metrics.last_task_at for w in live if w.metrics.last_task_at), default=None)
    sizes = [w.metrics.queue_size for w in live if w.metrics.queue_size is not None]
    values: dict[str, str | int] = {
        "health_score": summary.health_score,
        "queue_size": max(sizes, default=0),
        "in_flight": sum(w.metrics.in_flight for w in live),
        "tasks_ok": sum(w.metrics.tasks_ok for w in live),
        "tasks_failed": sum(w.metrics.tasks_failed for w in live),
        "last_task_at": last.isoformat() if isinstance(last, datetime) else "",
        **{f"workers_{status.value}": n for status, n in summary.counts.items()},
    }
    return {k: str(v) for k, v in values.items()}


class RegistryMirror:
    def __init__(self, redis: Redis, keys: RegistryKeys, *, status_ttl_s: int,
                 metrics_ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.status_ttl_s = status_ttl_s
        self.metrics_ttl_s = metrics_ttl_s

    async def write(self, summaries: Mapping[str, TagSummary | None],
                    events: list[RegistryEvent]) -> None:
        """Replace each tag's two keys (deleted when the tag has no workers left) and publish
        ``events``, in one round trip."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for tag, summary in summaries.items():
                status_key, metrics_key = self.keys.status(tag), self.keys.metrics(tag)
                pipe.delete(status_key, metrics_key)
                if summary is not None:
                    pipe.hset(status_key, mapping={
                        w.replica_id: w.model_dump_json() for w in summary.workers})
                    pipe.expire(status_key, self.status_ttl_s)
                    fields: dict[Any, Any] = tag_metrics(summary)
                    pipe.hset(metrics_key, mapping=fields)
                    pipe.expire(metrics_key, self.metrics_ttl_s)
            for event in events:
                pipe.publish(self.keys.events, event.model_dump_json())
            await pipe.execute()

    async def load(self) -> list[WorkerRecord]:
        """Every record still in Redis (what survives a registry restart)."""
        records: list[WorkerRecord] = []
        async for key in self.redis.scan_iter(match=self.keys.status("*"), count=200):
            for raw in (await self.redis.hgetall(key)).values():
                records.append(WorkerRecord.model_validate_json(raw))
        return records
