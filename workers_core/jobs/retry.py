"""Retry as a type: a policy gives the delay before attempt n+1 (exponential, capped, jittered)."""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field


class RetryPolicy(BaseModel):
    """Celery-like defaults: backoff doubles from ``backoff_base_s`` up to ``backoff_max_s``."""

    model_config = ConfigDict(frozen=True)

    max_attempts: int = Field(default=3, ge=1, le=100)
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_factor: float = Field(default=2.0, ge=1)
    backoff_max_s: float = Field(default=300.0, ge=0)
    jitter: bool = True

    def delay_s(self, failed_attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after attempt ``failed_attempt`` (1-based) failed.

        "Equal jitter": half the backoff is kept, the other half is random, so retries of
        many jobs that failed together spread out without ever retrying at once.
        """
        exponent = max(failed_attempt - 1, 0)
        raw = min(self.backoff_max_s, self.backoff_base_s * self.backoff_factor**exponent)
        if not self.jitter or raw == 0:
            return raw
        return raw / 2 + (rng or random).uniform(0, raw / 2)
