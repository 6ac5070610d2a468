"""The registry's rules (TTL, late, missing, recovered, scores) and its Redis mirror,
with a manual clock and a real Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from workers_core.clock import ManualClock
from workers_core.config import Settings
from workers_core.registry import scoring
from workers_core.registry.core import WorkerRegistry
from workers_core.registry.mirror import RegistryKeys
from workers_core.registry.models import (
    EventType,
    HealthDetail,
    Heartbeat,
    ReportedStatus,
    WorkerMetrics,
    WorkerStatus,
)
from workers_core.registry.service import RegistryService


def beat(replica: str = "r1", **fields: object) -> Heartbeat:
    return Heartbeat.model_validate({"replica_id": replica, "node": "n1", "version": "1",
                                     **fields})


def make_registry(clock: ManualClock) -> WorkerRegistry:
    return WorkerRegistry(ttl_s=90, default_interval_s=30, forget_after_s=600, clock=clock)


def kinds(events: list) -> list[str]:  # type: ignore[type-arg]
    return [e.type.value for e in events]


def test_first_heartbeat_registers_the_worker(clock: ManualClock) -> None:
    registry = make_registry(clock)
    assert kinds(registry.heartbeat("debug", beat())) == ["registered"]
    assert registry.heartbeat("debug", beat()) == []
    summary = registry.summary("debug")
    assert summary is not None and summary.counts[WorkerStatus.IDLE] == 1
    assert summary.workers[0].health_score == 100 == summary.health_score


def test_silence_is_late_after_one_and_a_half_periods_then_missing_past_the_ttl(
    clock: ManualClock,
) -> None:
    registry = make_registry(clock)
    registry.heartbeat("debug", beat())
    clock.advance(44)
    assert registry.sweep() == []
    clock.advance(2)
    assert kinds(registry.sweep()) == ["heartbeat-late"]
    assert kinds(registry.sweep()) == []  # reported once
    record = registry.summary("debug").workers[0]  # type: ignore[union-attr]
    assert record.late and record.health_score == 100 - scoring.LATE_PENALTY
    clock.advance(45)
    [missing] = registry.sweep()
    assert missing.type is EventType.MISSING and missing.status is WorkerStatus.MISSING
    summary = registry.summary("debug")
    assert summary is not None and summary.health_score == 0
    assert summary.workers[0].status is WorkerStatus.MISSING


def test_a_missing_worker_that_beats_again_has_recovered(clock: ManualClock) -> None:
    registry = make_registry(clock)
    registry.heartbeat("debug", beat())
    clock.advance(91)
    registry.sweep()
    [event] = registry.heartbeat("debug", beat(status="running"))
    assert event.type is EventType.RECOVERED and event.detail == "was missing"
    assert registry.summary("debug").workers[0].status is WorkerStatus.RUNNING  # type: ignore[union-attr]


def test_the_worker_interval_sets_when_it_is_late(clock: ManualClock) -> None:
    registry = make_registry(clock)
    registry.heartbeat("debug", beat(interval_s=2))
    clock.advance(3.5)
    assert kinds(registry.sweep()) == ["heartbeat-late"]


def test_failing_deep_health_is_an_error_status_with_the_failed_check(
    clock: ManualClock,
) -> None:
    registry = make_registry(clock)
    health = {"ok": False, "checks": {"email.send.smtp": "error: ConnectionRefusedError"}}
    registry.heartbeat("email", beat(status="idle", health=health))
    record = registry.summary("email").workers[0]  # type: ignore[union-attr]
    assert record.status is WorkerStatus.ERROR
    assert record.health.checks["email.send.smtp"].startswith("error")
    assert record.health_score == 100 - scoring.HEALTH_FAILING_PENALTY


def test_tag_score_is_the_mean_of_workers_that_have_not_stopped(clock: ManualClock) -> None:
    registry = make_registry(clock)
    registry.heartbeat("q", beat("a"))
    registry.heartbeat("q", beat("b", metrics={"tasks_ok": 1, "tasks_failed": 1}))
    registry.heartbeat("q", beat("c"))
    registry.unregister("q", "c")
    summary = registry.summary("q")
    assert summary is not None
    assert [w.health_score for w in summary.workers] == [100, 85, 0]
    assert summary.health_score == 92  # (100 + 85) / 2, the stopped one left out
    assert summary.counts[WorkerStatus.STOPPED] == 1


def test_unregister_without_a_replica_stops_the_whole_tag(clock: ManualClock) -> None:
    registry = make_registry(clock)
    registry.heartbeat("q", beat("a"))
    registry.heartbeat("q", beat("b"))
    assert kinds(registry.unregister("q")) == ["unregistered", "unregistered"]
    assert registry.unregister("q") == []
    assert kinds(registry.heartbeat("q", beat("a"))) == ["registered"]


def test_stopped_and_missing_workers_are_forgotten_later(clock: ManualClock) -> None:
    registry = make_registry(clock)
    registry.heartbeat("q", beat("a"))
    registry.heartbeat("q", beat("b"))
    registry.unregister("q", "a")
    clock.advance(100)
    registry.sweep()  # b missing now
    clock.advance(599)
    registry.sweep()
    assert [w.replica_id for w in registry.summary("q").workers] == ["b"]  # type: ignore[union-attr]
    clock.advance(2)
    registry.sweep()
    assert registry.summary("q") is None and registry.tags() == []


def test_a_worker_cannot_claim_missing_or_stopped() -> None:
    with pytest.raises(ValueError, match="status"):
        beat(status="missing")
    assert {s.value for s in ReportedStatus} == {"running", "idle", "error"}


# --- The service: the rules kept in step with Redis ------------------------------------


@pytest.fixture
def registry_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"registry_namespace": f"wrk-{settings.redis_prefix}"})


@pytest.fixture
async def redis(registry_settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(registry_settings.redis_url, decode_responses=True)
    yield client
    await client.aclose()


def service(settings: Settings, redis: Redis, clock: ManualClock) -> RegistryService:
    return RegistryService.from_settings(settings, redis, clock=clock)


async def test_status_and_metrics_are_mirrored_under_the_fixed_names_with_ttls(
    registry_settings: Settings, redis: Redis, clock: ManualClock
) -> None:
    svc = service(registry_settings, redis, clock)
    metrics = WorkerMetrics(queue_size=7, in_flight=2, tasks_ok=5, tasks_failed=1)
    await svc.heartbeat("pdf.render", beat("r1", status="running", metrics=metrics))
    ns = registry_settings.registry_namespace
    status = await redis.hgetall(f"{ns}:registry:status:pdf.render")
    assert json.loads(status["r1"])["status"] == "running"
    assert 110 < await redis.ttl(f"{ns}:registry:status:pdf.render") <= 120
    aggregate = await redis.hgetall(f"{ns}:registry:metrics:pdf.render")
    assert aggregate["queue_size"] == "7" and aggregate["in_flight"] == "2"
    assert aggregate["tasks_ok"] == "5" and aggregate["workers_running"] == "1"
    assert aggregate["health_score"] == "95"
    assert 50 < await redis.ttl(f"{ns}:registry:metrics:pdf.render") <= 60


async def test_events_are_published_on_the_events_channel(
    registry_settings: Settings, redis: Redis, clock: ManualClock
) -> None:
    svc = service(registry_settings, redis, clock)
    pubsub = redis.pubsub()
    await pubsub.subscribe(RegistryKeys(registry_settings.registry_namespace).events)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    await svc.heartbeat("debug", beat())
    clock.advance(46)
    await svc.sweep()
    clock.advance(45)
    await svc.sweep()
    await svc.heartbeat("debug", beat())
    await svc.unregister("debug", "r1")
    seen = []
    while len(seen) < 5:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
        assert message is not None, f"only {seen} arrived"
        seen.append(json.loads(message["data"])["type"])
    await pubsub.aclose()
    assert seen == ["registered", "heartbeat-late", "missing", "recovered", "unregistered"]


async def test_a_restarted_registry_rebuilds_from_redis_and_judges_the_silence(
    registry_settings: Settings, redis: Redis, clock: ManualClock
) -> None:
    first = service(registry_settings, redis, clock)
    await first.heartbeat("ocr", beat("a", status="running"))
    await first.heartbeat("ocr", beat("b"))
    await first.unregister("ocr", "b")
    clock.advance(60)
    await first.heartbeat("ocr", beat("c"))
    second = service(registry_settings, redis, clock)  # a new actor: empty memory
    assert await second.rebuild() == 3
    summary = second.summary("ocr")
    assert summary is not None
    assert {w.replica_id: w.status.value for w in summary.workers} == {
        "a": "running", "b": "stopped", "c": "idle"}
    clock.advance(31)  # a silent for 91 s in all
    [event] = await second.sweep()
    assert (event.type, event.replica_id) == (EventType.MISSING, "a")


async def test_a_forgotten_tag_is_removed_from_redis(
    registry_settings: Settings, redis: Redis, clock: ManualClock
) -> None:
    svc = service(registry_settings, redis, clock)
    await svc.heartbeat("q", beat())
    await svc.unregister("q")
    clock.advance(601)
    await svc.sweep()
    ns = registry_settings.registry_namespace
    assert await redis.exists(f"{ns}:registry:status:q", f"{ns}:registry:metrics:q") == 0


async def test_the_registry_keeps_working_while_redis_is_unreachable(
    registry_settings: Settings, clock: ManualClock
) -> None:
    dead = registry_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    client = Redis.from_url(dead.redis_url, socket_connect_timeout=0.2)
    svc = service(dead, client, clock)
    record = await asyncio.wait_for(svc.heartbeat("q", beat()), 10)
    assert record.status is WorkerStatus.IDLE
    assert svc.summary("q") is not None
    await client.aclose()


def test_health_detail_defaults_to_healthy() -> None:
    assert HealthDetail().ok and HealthDetail().circuit == "closed"
