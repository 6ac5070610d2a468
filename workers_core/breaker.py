"""A circuit breaker, so a caller facing a dead dependency fails fast instead of piling up:
the SDK in front of the platform, deep health checks, the ANAF HTTP client."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from workers_core.clock import Clock, SystemClock


class CircuitOpen(Exception):
    """Recent calls kept failing; calls are refused until ``retry_in_s`` has passed."""

    def __init__(self, retry_in_s: float) -> None:
        super().__init__(f"circuit open after repeated failures; next try in {retry_in_s:.1f}s")
        self.retry_in_s = retry_in_s


@dataclass
class CircuitBreaker:
    """Closed → open after ``failure_threshold`` consecutive failures; after ``reset_after_s``
    one trial call goes through (half-open): success closes it, failure opens it again."""

    failure_threshold: int = 5
    reset_after_s: float = 30.0
    clock: Clock = field(default_factory=SystemClock)
    failures: int = 0
    opened_at: float | None = None
    _trial_in_flight: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.clock.now() - self.opened_at >= self.reset_after_s:
            return "half-open"
        return "open"

    def before_call(self) -> None:
        """Raise ``CircuitOpen`` unless a call may be sent now."""
        with self._lock:
            state = self.state
            if state == "closed":
                return
            if state == "half-open" and not self._trial_in_flight:
                self._trial_in_flight = True
                return
            assert self.opened_at is not None
            left = self.reset_after_s - (self.clock.now() - self.opened_at)
            raise CircuitOpen(max(left, 0.0))

    def record_success(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self._trial_in_flight or self.failures >= self.failure_threshold:
                self.opened_at = self.clock.now()
            self._trial_in_flight = False
