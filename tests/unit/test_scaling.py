"""Backlog autoscaling: the replica rule, the Serve policy, settings and the reported backlog."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from ray.serve._private.common import DeploymentID, TimeStampedValue
from ray.serve.config import AutoscalingConfig, AutoscalingContext

from workers_core.actors.scaling import (
    BACKLOG_METRIC,
    BacklogPolicy,
    autoscaling_metrics,
    capacity_bundles,
    desired_replicas,
    latest_sample,
    replica_count_options,
)
from workers_core.config import QueueOverrides, Settings
from workers_core.jobs.models import JobSubmission
from workers_core.jobs.store import JobStore, NewJob
from workers_core.tasks.registry import Autoscaling, TaskCatalog


def settings_with(**kw: Any) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


@pytest.mark.parametrize(("backlog", "expected"), [
    (0, 1), (-3, 1), (1, 1), (5, 1), (6, 2), (15, 3), (16, 4), (10_000, 4),
])
def test_desired_replicas_is_backlog_over_target_clamped(backlog: float, expected: int) -> None:
    assert desired_replicas(backlog, target_backlog=5, min_replicas=1, max_replicas=4) == expected


def series(*points: tuple[float, float]) -> list[TimeStampedValue]:
    return [TimeStampedValue(timestamp=t, value=v) for t, v in points]


def test_the_newest_report_of_any_replica_is_the_backlog() -> None:
    raw = {BACKLOG_METRIC: {"r1": series((10.0, 40), (13.0, 30)),
                            "r2": series((11.0, 35), (14.0, 12)),
                            "r3": []}}
    assert latest_sample(raw, BACKLOG_METRIC) == (14.0, 12.0)
    assert latest_sample(raw, "other") is None
    assert latest_sample(None, BACKLOG_METRIC) is None


def context(raw: dict[str, Any] | None, *, now: float, target: int = 1, low: int = 1,
            high: int = 3) -> AutoscalingContext:
    return AutoscalingContext(
        deployment_id=DeploymentID(name="Pool_debug", app_name="workers"),
        deployment_name="Pool_debug", app_name="workers",
        current_num_replicas=target, target_num_replicas=target, running_replicas=[],
        total_num_requests=0.0, total_queued_requests=0.0,
        aggregated_metrics=None, raw_metrics=raw,
        capacity_adjusted_min_replicas=low, capacity_adjusted_max_replicas=high,
        policy_state={}, last_scale_up_time=None, last_scale_down_time=None,
        current_time=now, config=AutoscalingConfig(min_replicas=low, max_replicas=high),
    )


def test_the_policy_asks_for_backlog_over_target_within_capacity_bounds() -> None:
    now = time.time()
    policy = BacklogPolicy(target_backlog=5)
    raw = {BACKLOG_METRIC: {"r1": series((now - 1, 12))}}
    assert policy(context(raw, now=now))[0] == 3
    assert policy(context({BACKLOG_METRIC: {"r1": series((now - 1, 500))}}, now=now))[0] == 3
    # Serve's target capacity (a rollout at 50 %) narrows the bounds the policy sees.
    assert policy(context(raw, now=now, high=2))[0] == 2
    assert policy(context({BACKLOG_METRIC: {"r1": series((now - 1, 0))}}, now=now, target=3)
                  )[0] == 1


def test_the_policy_holds_its_target_without_a_fresh_report() -> None:
    now = time.time()
    policy = BacklogPolicy(target_backlog=5, stale_after_s=30)
    assert policy(context(None, now=now, target=2))[0] == 2
    stale = {BACKLOG_METRIC: {"r1": series((now - 31, 0))}}
    assert policy(context(stale, now=now, target=2))[0] == 2


def test_unset_replicas_autoscale_between_the_defaults_and_overrides() -> None:
    catalog = TaskCatalog.discover()
    settings = settings_with(pool_max_replicas=4, pool_target_backlog=50,
                             queues={"debug": QueueOverrides(scale_down_cooldown_s=0)})
    spec = catalog.queue_spec("debug", settings)
    assert spec.autoscaling == Autoscaling(min_replicas=1, max_replicas=4, target_backlog=50,
                                           scale_down_cooldown_s=0)
    assert spec.replicas == 1


def test_a_fixed_replica_count_turns_autoscaling_off() -> None:
    catalog = TaskCatalog.discover()
    fixed = settings_with(pool_max_replicas=4, queues={"debug": QueueOverrides(replicas=2)})
    spec = catalog.queue_spec("debug", fixed)
    assert spec.autoscaling is None and spec.replicas == 2
    assert replica_count_options(spec) == {"num_replicas": 2}
    # The defaults (min 1, max 1) keep every pool at one replica, as before.
    assert catalog.queue_spec("debug", settings_with()).autoscaling is None


def test_serve_gets_the_bounds_cooldown_and_backlog_policy() -> None:
    settings = settings_with(queues={"debug": QueueOverrides(
        min_replicas=2, max_replicas=5, target_backlog=7, scale_down_cooldown_s=30)})
    spec = TaskCatalog.discover().queue_spec("debug", settings)
    config = replica_count_options(spec)["autoscaling_config"]
    assert (config.min_replicas, config.max_replicas) == (2, 5)
    assert config.downscale_delay_s == 30 and config.upscale_delay_s == 0
    assert config.policy.get_policy() is BacklogPolicy
    assert config.policy.policy_kwargs == {"target_backlog": 7}


def test_min_above_max_is_refused_at_startup_naming_the_queue() -> None:
    with pytest.raises(ValidationError, match=r"min_replicas \(3\) > max_replicas \(2\)"):
        QueueOverrides(min_replicas=3, max_replicas=2)
    # A per-queue min against the global max is checked once both are known.
    with pytest.raises(ValidationError, match=r"queues\.ocr: min_replicas \(3\) > max"):
        settings_with(queues={"ocr": QueueOverrides(min_replicas=3)})
    with pytest.raises(ValidationError, match=r"pool_\*: min_replicas \(2\) > max"):
        settings_with(pool_min_replicas=2)


def test_a_queue_is_either_fixed_or_autoscaled_and_never_scaled_to_zero() -> None:
    with pytest.raises(ValidationError, match="either replicas"):
        QueueOverrides(replicas=2, max_replicas=4)
    with pytest.raises(ValidationError, match="min_replicas"):
        QueueOverrides(min_replicas=0)


def test_capacity_bundles_are_one_replica_shape_per_replica() -> None:
    settings = settings_with(queues={"ocr": QueueOverrides(num_gpus=0.5, memory_mb=512)})
    spec = TaskCatalog.discover().queue_spec("ocr", settings)
    assert capacity_bundles([(spec, 2)]) == [
        {"CPU": 1.0, "GPU": 0.5, "memory": 512 * 1024 * 1024.0}] * 2


def new_job(**kw: Any) -> NewJob:
    return NewJob(JobSubmission(task="debug.echo", payload={}, **kw),  # type: ignore[arg-type]
                  queue="debug", max_attempts=3, idempotency_key=None)


async def test_the_reported_backlog_is_waiting_plus_in_flight_not_delayed(
    store: JobStore,
) -> None:
    await store.ensure_group("debug")
    await store.submit_many([new_job() for _ in range(5)])
    later = datetime.now(UTC) + timedelta(hours=1)
    await store.submit_many([new_job(not_before=later) for _ in range(3)])
    assert (await autoscaling_metrics(store, "debug"))[BACKLOG_METRIC] == 5.0
    delivered = await store.read("debug", "replica-1", count=2, block_ms=1)
    assert len(delivered) == 2  # now pending (in flight), still backlog
    assert (await autoscaling_metrics(store, "debug"))[BACKLOG_METRIC] == 5.0
