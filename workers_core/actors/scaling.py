"""Backlog-driven pool autoscaling on Ray Serve (in place of KEDA's queue scaler + HPA).

Each replica of an autoscaled pool reports its queue's backlog (waiting + in-flight stream
entries) through Serve's ``record_autoscaling_stats`` hook; ``BacklogPolicy`` runs in the
Serve controller on those reports and asks for ``clamp(ceil(backlog / target), min, max)``
replicas. Serve's own delay logic applies the scale-down cooldown (``downscale_delay_s``).
Replicas that do not fit stay pending actors, which is the demand the Ray autoscaler adds
nodes for; ``warm_capacity`` asks it for capacity ahead of a known batch. An operator's target
(``jobs/pool_controls.py``), reported alongside the backlog, replaces the backlog rule while
set, still clamped to min/max.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ray.serve.config import AutoscalingConfig, AutoscalingContext, AutoscalingPolicy

from workers_core.jobs.store import JobStore
from workers_core.tasks.base import Resources
from workers_core.tasks.registry import QueueSpec

BACKLOG_METRIC = "backlog"
# An operator's replica target (POST /v1/queues/{queue}:scale); 0: none, the backlog decides.
OPERATOR_TARGET_METRIC = "operator_target"
# Replicas sample the backlog every look_back * 0.2 s (3 s) and push every 10 s (Serve's
# metrics_interval_s, deprecated to change); the look-back must exceed that push interval.
LOOK_BACK_S = 15.0
# A report older than this (every replica stuck or Redis away) is not acted on.
STALE_AFTER_S = 60.0


def desired_replicas(backlog: float, target_backlog: int, min_replicas: int,
                     max_replicas: int) -> int:
    """``clamp(ceil(backlog / target_backlog), min, max)``: KEDA's queueLength rule."""
    wanted = math.ceil(max(backlog, 0) / target_backlog)
    return max(min_replicas, min(max_replicas, wanted))


def latest_sample(raw_metrics: Mapping[str, Mapping[Any, Any]] | None,
                  name: str) -> tuple[float, float] | None:
    """The newest ``(timestamp, value)`` of a metric over all replicas.

    Every replica of a pool reads the same stream, so the newest report is the backlog;
    summing or averaging across replicas would count it once per replica.
    """
    newest: tuple[float, float] | None = None
    for series in (raw_metrics or {}).get(name, {}).values():
        if series and (newest is None or series[-1].timestamp > newest[0]):
            newest = (float(series[-1].timestamp), float(series[-1].value))
    return newest


class BacklogPolicy:
    """Serve custom autoscaling policy (one instance per pool, in the controller)."""

    def __init__(self, target_backlog: int, stale_after_s: float = STALE_AFTER_S) -> None:
        self.target_backlog = target_backlog
        self.stale_after_s = stale_after_s

    def __call__(self, ctx: AutoscalingContext) -> tuple[int, dict[str, Any]]:
        sample = latest_sample(ctx.raw_metrics, BACKLOG_METRIC)
        now = ctx.current_time if ctx.current_time is not None else time.time()
        if sample is None or now - sample[0] > self.stale_after_s:
            # Nothing fresh to go on: hold the current target rather than guess.
            return ctx.target_num_replicas, {"backlog": -1}
        low, high = ctx.capacity_adjusted_min_replicas, ctx.capacity_adjusted_max_replicas
        target = latest_sample(ctx.raw_metrics, OPERATOR_TARGET_METRIC)
        if target is not None and target[1] >= 1 and now - target[0] <= self.stale_after_s:
            desired = max(low, min(high, int(target[1])))
            return desired, {"backlog": sample[1], "operator_target": target[1]}
        desired = desired_replicas(sample[1], self.target_backlog, low, high)
        return desired, {"backlog": sample[1]}


def replica_count_options(spec: QueueSpec) -> dict[str, Any]:
    """``serve.deployment`` options for the pool's size: a fixed count or autoscaling."""
    scaling = spec.autoscaling
    if scaling is None:
        return {"num_replicas": spec.replicas}
    return {"autoscaling_config": AutoscalingConfig(
        min_replicas=scaling.min_replicas,
        max_replicas=scaling.max_replicas,
        upscale_delay_s=0.0,  # reports arrive every 10 s: that already paces upscaling
        downscale_delay_s=scaling.scale_down_cooldown_s,
        look_back_period_s=LOOK_BACK_S,
        policy=AutoscalingPolicy(  # type: ignore[no-untyped-call]
            policy_function=BacklogPolicy,
            policy_kwargs={"target_backlog": scaling.target_backlog},
        ),
    )}


async def autoscaling_metrics(store: JobStore, queue: str) -> dict[str, float]:
    """What an autoscaled replica reports, from one read: the backlog (entries not yet
    delivered plus delivered, unacknowledged) and the operator's target (0: none).

    Delayed retries and scheduled jobs are left out of the backlog: they cannot run before
    they are due, and counting them would keep replicas up for jobs that wait minutes or days.
    """
    (stats,) = await store.queue_stats([queue])
    return {BACKLOG_METRIC: float(stats.lag + stats.pending),
            OPERATOR_TARGET_METRIC: float(stats.operator_target or 0)}


def replica_bundle(resources: Resources) -> dict[str, float]:
    """One replica's logical resources as a Ray resource bundle."""
    bundle: dict[str, float] = {"CPU": resources.num_cpus}
    if resources.num_gpus:
        bundle["GPU"] = resources.num_gpus
    if resources.memory_mb:
        bundle["memory"] = float(resources.memory_mb * 1024 * 1024)
    return bundle


def capacity_bundles(wanted: Iterable[tuple[QueueSpec, int]]) -> list[dict[str, float]]:
    """One bundle per replica wanted, per pool."""
    return [replica_bundle(spec.resources) for spec, replicas in wanted
            for _ in range(replicas)]


def warm_capacity(wanted: Iterable[tuple[QueueSpec, int]]) -> list[dict[str, float]]:
    """Ask the Ray autoscaler for room for these replicas now (before a known batch).

    The request is cluster-wide and replaces the previous one, so pass every pool to warm
    in one call; it holds until ``release_capacity()``. Needs ``ray.init`` (the cluster).
    """
    from ray.autoscaler.sdk import request_resources

    bundles = capacity_bundles(wanted)
    request_resources(bundles=bundles)
    return bundles


def release_capacity() -> None:
    """Withdraw the ``warm_capacity`` request (idle nodes then go after their timeout)."""
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=[])
