"""Per-client submission limits in Redis: GCRA where one call may count several jobs.

``ratelimit.RedisRateLimiter`` counts one call per acquire; a batch must count each of its
jobs atomically, hence this variant. A charge larger than the burst is let through when the
client's bucket is full and pushes its later submissions back (the long-run rate holds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis.asyncio as aioredis

from workers_core.clock import Clock, SystemClock
from workers_core.config import Settings, SubmitRate
from workers_core.errors import WorkersError
from workers_core.jobs.keys import RedisKeys
from workers_core.jobs.store import redis_errors_as_503
from workers_core.ratelimit import Rate

# KEYS[1] client key; ARGV: now, interval, burst, cost -> {wait s, remaining, full in s}
_CHARGE = r"""
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat + math.min(cost, burst) * interval - burst * interval
if now < allow_at then
  return {tostring(allow_at - now), tostring(burst - (tat - now) / interval), tostring(tat - now)}
end
tat = tat + cost * interval
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
return {'0', tostring(burst - (tat - now) / interval), tostring(tat - now)}
"""


def _limit(rate: SubmitRate) -> tuple[float, int]:
    """(seconds per job, burst) of a configured rate."""
    return Rate.parse(rate.rate).interval_s, rate.burst


class SubmissionRateExceeded(WorkersError):
    """429: this client submitted more jobs than its rate allows; retry after ``after_s``."""

    status_code = 429
    problem_type = "submission-rate-exceeded"

    def __init__(self, message: str, decision: QuotaDecision) -> None:
        super().__init__(message)
        self.decision = decision


@dataclass(frozen=True)
class QuotaDecision:
    allowed: bool
    retry_after_s: float
    limit: int
    remaining: int
    reset_s: float

    def headers(self) -> dict[str, str]:
        """RateLimit-* (draft-ietf-httpapi-ratelimit-headers) and, when refused, Retry-After."""
        out = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
               "RateLimit-Reset": str(math.ceil(self.reset_s))}
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return out


class SubmissionQuota:
    """``await quota.charge(client, jobs)``: counts the jobs, or says how long to wait."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, default: SubmitRate | None,
                 overrides: dict[str, SubmitRate] | None = None,
                 clock: Clock | None = None) -> None:
        self._redis = redis
        self._keys = keys
        # Parsed once: a rate that cannot be read stops the start, not every request.
        self._default = _limit(default) if default else None
        self._overrides = {k: _limit(v) for k, v in (overrides or {}).items()}
        self._clock = clock or SystemClock()
        self._script = redis.register_script(_CHARGE)

    @classmethod
    def from_settings(cls, redis: aioredis.Redis, settings: Settings,
                      clock: Clock | None = None) -> SubmissionQuota:
        default = (SubmitRate(rate=settings.submit_rate_limit, burst=settings.submit_rate_burst)
                   if settings.submit_rate_limit else None)
        return cls(redis, RedisKeys(settings.redis_prefix), default,
                   settings.submit_rate_overrides, clock)

    async def charge(self, client: str, jobs: int) -> QuotaDecision | None:
        """None when this client has no limit; else the decision (jobs counted if allowed)."""
        limit = self._overrides.get(client, self._default)
        if limit is None:
            return None
        interval_s, burst = limit
        async with redis_errors_as_503():  # a 503 like the store's, not a 500
            wait, remaining, reset = await self._script(
                keys=[self._keys.submit_quota(client)],
                args=[repr(self._clock.now()), repr(interval_s), burst, max(jobs, 1)],
            )
        return QuotaDecision(
            allowed=float(wait) <= 0, retry_after_s=float(wait), limit=burst,
            remaining=max(0, math.floor(float(remaining))), reset_s=max(0.0, float(reset)),
        )
