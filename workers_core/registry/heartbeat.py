"""The heartbeat a worker sends: a ``step()`` and a thin loop, with exponential backoff
while the registry cannot be reached (the worker's jobs go on regardless)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from workers_core.registry.models import Heartbeat

log = structlog.get_logger("workers_core.heartbeat")

BACKOFF_FIRST_S = 1.0


class RegistryLink(Protocol):
    """How a worker reaches the registry (a Ray actor in the platform)."""

    async def heartbeat(self, tag: str, hb: Heartbeat) -> object: ...

    async def unregister(self, tag: str, replica_id: str) -> object: ...


class HeartbeatLoop:
    def __init__(self, link: RegistryLink, tag: str, report: Callable[[], Awaitable[Heartbeat]],
                 *, interval_s: float, backoff_max_s: float,
                 on_latency: Callable[[float], None] | None = None,
                 rng: random.Random | None = None) -> None:
        self.link = link
        self.tag = tag
        self.report = report
        self.interval_s = interval_s
        self.backoff_max_s = backoff_max_s
        self.on_latency = on_latency
        self.rng = rng or random.Random()
        self.failures = 0  # in a row

    async def step(self) -> float:
        """Send one heartbeat; return how long to wait before the next one."""
        hb = await self.report()
        started = time.perf_counter()
        try:
            await self.link.heartbeat(self.tag, hb)
        except Exception as exc:
            self.failures += 1
            ceiling = min(BACKOFF_FIRST_S * 2.0 ** (self.failures - 1), self.backoff_max_s)
            delay = ceiling / 2 + self.rng.uniform(0, ceiling / 2)  # equal jitter
            log.warning("registry_unreachable", tag=self.tag, failures=self.failures,
                        retry_in_s=round(delay, 2), error=f"{type(exc).__name__}: {exc}")
            return delay
        if self.on_latency is not None:
            self.on_latency(time.perf_counter() - started)
        if self.failures:
            log.info("registry_reachable_again", tag=self.tag, after_failures=self.failures)
        self.failures = 0
        return self.interval_s

    async def run_forever(self) -> None:
        while True:
            try:
                delay = await self.step()
            except Exception:  # building the report failed: log, try again next period
                log.exception("heartbeat_step_failed", tag=self.tag)
                delay = self.interval_s
            await asyncio.sleep(delay)
