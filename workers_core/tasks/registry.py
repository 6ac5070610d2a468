"""Discovery of task types (entry points) and the pool spec each queue gets from them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from workers_core.config import QueueOverrides, Settings
from workers_core.errors import UnknownTask, WorkersError
from workers_core.tasks.base import Resources, Task

ENTRY_POINT_GROUP = "workers_core.tasks"


@dataclass(frozen=True)
class Autoscaling:
    """Replica bounds and the backlog target of an autoscaled pool (actors/scaling.py)."""

    min_replicas: int
    max_replicas: int
    target_backlog: int
    scale_down_cooldown_s: float


@dataclass(frozen=True)
class QueueSpec:
    """A pool: the tasks it serves and what each replica needs, settings applied."""

    queue: str
    tasks: tuple[type[Task[Any, Any]], ...]
    resources: Resources
    concurrency: int
    replicas: int
    time_limit_s: float
    visibility_timeout_s: float
    autoscaling: Autoscaling | None = None  # None: a fixed `replicas` count


class TaskCatalog:
    """Every known task type by name."""

    def __init__(self, tasks: Iterable[type[Task[Any, Any]]]) -> None:
        self._tasks: dict[str, type[Task[Any, Any]]] = {}
        for task in tasks:
            if task.name in self._tasks and self._tasks[task.name] is not task:
                raise WorkersError(f"two task types are named {task.name!r}")
            self._tasks[task.name] = task

    @classmethod
    def discover(cls) -> TaskCatalog:
        found: list[type[Task[Any, Any]]] = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            obj = ep.load()
            found.extend(obj if isinstance(obj, list | tuple) else [obj])
        return cls(found)

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def get(self, name: str) -> type[Task[Any, Any]]:
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTask(
                f"unknown task {name!r}; known tasks: {', '.join(self.names())}",
                known_tasks=self.names(),
            ) from None

    def queues(self) -> list[str]:
        return sorted({t.queue for t in self._tasks.values()})

    def queue_spec(self, queue: str, settings: Settings) -> QueueSpec:
        tasks = tuple(t for t in self._tasks.values() if t.queue == queue)
        if not tasks:
            raise WorkersError(f"no task type uses queue {queue!r}")
        o = settings.overrides_for(queue)
        resources = Resources(
            num_cpus=o.num_cpus if o.num_cpus is not None
            else max(t.resources.num_cpus for t in tasks),
            num_gpus=o.num_gpus if o.num_gpus is not None
            else max(t.resources.num_gpus for t in tasks),
            memory_mb=o.memory_mb if o.memory_mb is not None
            else max((t.resources.memory_mb or 0) for t in tasks) or None,
        )
        time_limit = o.time_limit_s or max(t.time_limit_s for t in tasks)
        return QueueSpec(
            queue=queue,
            tasks=tasks,
            resources=resources,
            concurrency=o.concurrency or max(t.concurrency for t in tasks),
            replicas=o.replicas if o.replicas is not None else (
                o.min_replicas or settings.pool_min_replicas),
            time_limit_s=time_limit,
            visibility_timeout_s=o.visibility_timeout_s or settings.visibility_timeout_s,
            autoscaling=_autoscaling(o, settings),
        )


def _autoscaling(o: QueueOverrides, settings: Settings) -> Autoscaling | None:
    """The pool's bounds, or None for a fixed count (``replicas`` set, or min == max)."""
    low = o.min_replicas or settings.pool_min_replicas
    high = o.max_replicas or settings.pool_max_replicas
    if o.replicas is not None or low == high:
        return None
    return Autoscaling(
        min_replicas=low,
        max_replicas=high,
        target_backlog=o.target_backlog or settings.pool_target_backlog,
        scale_down_cooldown_s=(o.scale_down_cooldown_s if o.scale_down_cooldown_s is not None
                               else settings.pool_scale_down_cooldown_s),
    )
