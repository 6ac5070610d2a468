"""A replica's deep health, checked on its own period, never inline in Serve's check.

Each check runs with a timeout; a circuit breaker spaces the checks out while a dependency
keeps failing (one trial per reset period), and ``unhealthy_reason`` turns a failure into
a replica restart only once it has lasted ``unhealthy_after_s``, not on one blip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog

from workers_core.breaker import CircuitBreaker, CircuitOpen
from workers_core.clock import Clock, SystemClock
from workers_core.registry.models import HealthDetail
from workers_core.tasks.base import Health

log = structlog.get_logger("workers_core.health")

Probe = Callable[[], Awaitable[dict[str, Health]]]
"""The replica's deep checks: task name -> its verdict (``QueueConsumer.health``)."""


def flatten(results: dict[str, Health]) -> tuple[bool, dict[str, str]]:
    """All tasks' checks as ``<task>.<check>`` -> outcome, and whether all passed."""
    checks = {f"{task}.{name}": value for task, health in results.items()
              for name, value in health.checks.items()}
    for task, health in results.items():
        if not health.ok and not health.checks:  # a bare verdict still names the task
            checks[f"{task}.health"] = "error"
    return all(h.ok for h in results.values()), checks


class HealthMonitor:
    def __init__(self, probe: Probe, *, timeout_s: float, unhealthy_after_s: float,
                 breaker: CircuitBreaker, clock: Clock | None = None) -> None:
        self.probe = probe
        self.timeout_s = timeout_s
        self.unhealthy_after_s = unhealthy_after_s
        self.breaker = breaker
        self.clock = clock or SystemClock()
        self.last = HealthDetail(ok=True, checks={"deep": "not checked yet"})
        self._failing_since: float | None = None

    async def step(self) -> HealthDetail:
        """Run the checks unless the breaker holds them back; return the latest verdict."""
        try:
            self.breaker.before_call()
        except CircuitOpen:
            self.last = self.last.model_copy(update={"circuit": self.breaker.state})
            return self.last
        try:
            ok, checks = flatten(await asyncio.wait_for(self.probe(), self.timeout_s))
        except TimeoutError:
            ok, checks = False, {"deep": f"error: no answer in {self.timeout_s:g} s"}
        except Exception as exc:  # a check that raises is a failed check, not a dead loop
            ok, checks = False, {"deep": f"error: {type(exc).__name__}: {exc}"}
        now = self.clock.now()
        if ok:
            self.breaker.record_success()
            self._failing_since = None
        else:
            self.breaker.record_failure()
            if self._failing_since is None:
                self._failing_since = now
        self.last = HealthDetail(
            ok=ok, checks=checks, checked_at=datetime.fromtimestamp(now, UTC),
            failing_since=(None if self._failing_since is None
                           else datetime.fromtimestamp(self._failing_since, UTC)),
            circuit=self.breaker.state,
        )
        return self.last

    def unhealthy_reason(self) -> str | None:
        """Why the replica should be restarted: its checks have failed for too long."""
        if self._failing_since is None:
            return None
        failing_s = self.clock.now() - self._failing_since
        if failing_s < self.unhealthy_after_s:
            return None
        failed = {k: v for k, v in self.last.checks.items() if v.startswith("error")}
        return f"deep health failing for {failing_s:.0f} s: {failed}"

    async def run_forever(self, interval_s: float) -> None:
        while True:
            try:
                await self.step()
            except Exception:  # pragma: no cover - step() handles the probe's errors
                log.exception("health_check_loop_error")
            await asyncio.sleep(interval_s)
