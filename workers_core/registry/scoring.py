"""Health scores, 0-100, per worker and per tag.

Worker: 0 when ``missing`` or ``stopped``; otherwise
``100 - 60·(deep check failing) - 30·failed/(ok+failed) - 10·(heartbeat late)``, clamped.
Tag: the mean over its workers that have not stopped (a missing one counts as 0), 0 if none.
"""

from __future__ import annotations

from collections.abc import Iterable

from workers_core.registry.models import HealthDetail, WorkerMetrics, WorkerStatus

HEALTH_FAILING_PENALTY = 60
FAILURE_RATIO_PENALTY = 30
LATE_PENALTY = 10


def worker_score(
    status: WorkerStatus, health: HealthDetail, metrics: WorkerMetrics, late: bool
) -> int:
    if status in (WorkerStatus.MISSING, WorkerStatus.STOPPED):
        return 0
    score = 100.0
    if not health.ok or status is WorkerStatus.ERROR:
        score -= HEALTH_FAILING_PENALTY
    done = metrics.tasks_ok + metrics.tasks_failed
    if done:
        score -= FAILURE_RATIO_PENALTY * metrics.tasks_failed / done
    if late:
        score -= LATE_PENALTY
    return max(0, min(100, round(score)))


def tag_score(workers: Iterable[tuple[WorkerStatus, int]]) -> int:
    counted = [score for status, score in workers if status is not WorkerStatus.STOPPED]
    return round(sum(counted) / len(counted)) if counted else 0
