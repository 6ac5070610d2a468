"""A replica's side: heartbeats with backoff, deep health with timeout, breaker, threshold."""

from __future__ import annotations

import asyncio
import random

from workers_core.breaker import CircuitBreaker
from workers_core.clock import ManualClock
from workers_core.registry.core import WorkerRegistry
from workers_core.registry.health import HealthMonitor, flatten
from workers_core.registry.heartbeat import HeartbeatLoop
from workers_core.registry.models import Heartbeat, WorkerStatus
from workers_core.tasks.base import Health


class InProcessLink:
    """The registry rules reached directly; ``down`` makes every call fail."""

    def __init__(self, registry: WorkerRegistry) -> None:
        self.registry = registry
        self.down = False

    async def heartbeat(self, tag: str, hb: Heartbeat) -> None:
        if self.down:
            raise ConnectionError("registry unreachable")
        self.registry.heartbeat(tag, hb)

    async def unregister(self, tag: str, replica_id: str) -> None:
        self.registry.unregister(tag, replica_id)


def heartbeats(link: InProcessLink) -> HeartbeatLoop:
    async def report() -> Heartbeat:
        return Heartbeat(replica_id="r1")

    return HeartbeatLoop(link, "debug", report, interval_s=30, backoff_max_s=20,
                         rng=random.Random(7))


async def test_heartbeats_back_off_exponentially_while_the_registry_is_down(
    clock: ManualClock,
) -> None:
    link = InProcessLink(WorkerRegistry(ttl_s=90, default_interval_s=30,
                                        forget_after_s=600, clock=clock))
    loop = heartbeats(link)
    assert await loop.step() == 30
    link.down = True
    delays = [await loop.step() for _ in range(7)]
    ceilings = [1, 2, 4, 8, 16, 20, 20]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays
    link.down = False
    assert await loop.step() == 30 and loop.failures == 0
    assert link.registry.summary("debug").workers[0].status is WorkerStatus.IDLE  # type: ignore[union-attr]


def monitor(probe: object, clock: ManualClock, timeout_s: float = 1.0) -> HealthMonitor:
    return HealthMonitor(probe,  # type: ignore[arg-type]
                         timeout_s=timeout_s, unhealthy_after_s=60,
                         breaker=CircuitBreaker(failure_threshold=3, reset_after_s=30,
                                                clock=clock),
                         clock=clock)


class Dependency:
    def __init__(self) -> None:
        self.up = True
        self.calls = 0

    async def __call__(self) -> dict[str, Health]:
        self.calls += 1
        if self.up:
            return {"email.send": Health(ok=True, checks={"smtp": "ok"})}
        return {"email.send": Health(ok=False, checks={"smtp": "error: refused"})}


async def test_a_blip_does_not_make_the_replica_unhealthy_but_a_lasting_failure_does(
    clock: ManualClock,
) -> None:
    dep = Dependency()
    mon = monitor(dep, clock)
    assert (await mon.step()).ok
    dep.up = False
    detail = await mon.step()
    assert not detail.ok and detail.checks == {"email.send.smtp": "error: refused"}
    assert detail.failing_since is not None and mon.unhealthy_reason() is None
    clock.advance(59)
    assert mon.unhealthy_reason() is None
    clock.advance(2)
    assert "email.send.smtp" in (mon.unhealthy_reason() or "")
    dep.up = True
    clock.advance(30)  # the breaker lets a trial through
    assert (await mon.step()).ok and mon.unhealthy_reason() is None


async def test_the_breaker_stops_hammering_a_failing_dependency(clock: ManualClock) -> None:
    dep = Dependency()
    dep.up = False
    mon = monitor(dep, clock)
    for _ in range(10):
        await mon.step()
    assert dep.calls == 3 and mon.last.circuit == "open"
    clock.advance(31)
    await mon.step()
    assert dep.calls == 4 and mon.last.circuit == "open"


async def test_a_check_that_hangs_fails_after_its_timeout(clock: ManualClock) -> None:
    async def hangs() -> dict[str, Health]:
        await asyncio.sleep(60)
        return {}

    detail = await monitor(hangs, clock, timeout_s=0.05).step()
    assert not detail.ok and "no answer in 0.05 s" in detail.checks["deep"]


async def test_a_check_that_raises_is_a_failed_check(clock: ManualClock) -> None:
    async def raises() -> dict[str, Health]:
        raise OSError("model file missing")

    detail = await monitor(raises, clock).step()
    assert not detail.ok and "model file missing" in detail.checks["deep"]


def test_checks_are_named_by_task() -> None:
    ok, checks = flatten({"a": Health(ok=True, checks={"x": "ok"}),
                          "b": Health(ok=False)})
    assert not ok and checks == {"a.x": "ok", "b.health": "error"}
