"""The registry's Ray metrics (exported by Ray with the ``ray_`` prefix)."""

from __future__ import annotations

from ray.util.metrics import Gauge, Histogram

from workers_core.registry.core import WorkerRegistry

LATENCY_BOUNDARIES = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]


class RegistryGauges:
    """``workers_registry_workers{status}`` and ``workers_worker_health_score{tag}``."""

    def __init__(self) -> None:
        self.workers = Gauge("workers_registry_workers", "Workers in the registry, by status.",
                             tag_keys=("status",))
        self.score = Gauge("workers_worker_health_score",
                           "Aggregate health score (0-100) of a tag's workers.",
                           tag_keys=("tag",))

    def __call__(self, registry: WorkerRegistry) -> None:
        for status, count in registry.status_counts().items():
            self.workers.set(count, tags={"status": status.value})
        for summary in registry.summaries():
            self.score.set(summary.health_score, tags={"tag": summary.tag})


def heartbeat_latency() -> Histogram:
    """``workers_heartbeat_latency_seconds{tag}``: one heartbeat's round trip."""
    return Histogram("workers_heartbeat_latency_seconds",
                     "Round trip of one heartbeat to the registry.",
                     boundaries=LATENCY_BOUNDARIES, tag_keys=("tag",))
