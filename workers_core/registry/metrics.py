"""The registry's metrics, recorded through the one definitions module
(:mod:`workers_core.observability.metrics`), so names and kinds match the dashboard."""

from __future__ import annotations

from workers_core.observability import metrics
from workers_core.registry.core import WorkerRegistry
from workers_core.registry.models import TagSummary


class RegistryGauges:
    """``workers_registry_workers{status}`` and ``workers_worker_health_score{tag}``."""

    def __call__(self, registry: WorkerRegistry, changed: list[TagSummary]) -> None:
        """Every status count, and the score of each changed tag (a score depends only on
        its own tag's workers, so the others still hold)."""
        for status, count in registry.status_counts().items():
            metrics.record(metrics.REGISTRY_WORKERS, count, status=status.value)
        for summary in changed:
            metrics.record(metrics.WORKER_HEALTH_SCORE, summary.health_score, tag=summary.tag)


def heartbeat_latency(tag: str, seconds: float) -> None:
    """``workers_heartbeat_latency_seconds{tag}``: the last heartbeat's round trip."""
    metrics.record(metrics.HEARTBEAT_LATENCY, seconds, tag=tag)
