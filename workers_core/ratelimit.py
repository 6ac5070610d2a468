"""A rate limit shared by every replica in the cluster, kept in Redis (GCRA).

Used for a task's ``rate_limit`` ("10/s", "100/m", "1000/h") and by integrations whose
outside service publishes a quota (ANAF: 1 request/s on the public lookup).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import redis.asyncio as aioredis

from workers_core.clock import Clock, SystemClock

_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

# KEYS[1] limiter key; ARGV: now, emission interval, burst tolerance -> wait seconds (0 = go)
_GCRA = r"""
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return tostring(allow_at - now) end
local ttl_ms = math.ceil((tat + interval - now) * 1000) + 1000
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', ttl_ms)
return '0'
"""

# KEYS[1] limiter key; ARGV: now, interval -> the next call not before now + interval
_HOLD = r"""
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now + interval then tat = now + interval end
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
return '0'
"""


@dataclass(frozen=True)
class Rate:
    count: int
    period_s: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*", text)
        if not match or int(match.group(1)) == 0:
            raise ValueError(f"rate limit {text!r} is not like '10/s', '100/m' or '5/10s'")
        count, mult, unit = match.groups()
        return cls(int(count), (int(mult) if mult else 1) * _PERIODS[unit])

    @property
    def interval_s(self) -> float:
        return self.period_s / self.count


class RedisRateLimiter:
    """``await limiter.acquire()`` returns when one more call fits in the shared rate.

    ``from_answer=True``: the interval also runs from each call's answer (``after_call``),
    for services that count arrivals (ANAF's 1 req/s): spacing departures alone lets a slow
    first request (TLS handshake, a busy CPU) arrive less than an interval before the next.
    """

    def __init__(
        self, redis: aioredis.Redis, key: str, rate: Rate, burst: int = 1,
        clock: Clock | None = None, from_answer: bool = False,
    ) -> None:
        self.redis = redis
        self.key = key
        self.rate = rate
        self.burst = max(burst, 1)
        self.clock = clock or SystemClock()
        self.from_answer = from_answer
        self._script = redis.register_script(_GCRA)
        self._hold = redis.register_script(_HOLD)

    async def after_call(self) -> None:
        """The call has been answered: with ``from_answer``, the next waits an interval."""
        if self.from_answer:
            await self._hold(keys=[self.key],
                             args=[repr(self.clock.now()), repr(self.rate.interval_s)])

    async def try_acquire(self) -> float:
        """0 if a call may go now (and counts it), else seconds to wait before trying again."""
        tolerance = self.rate.interval_s * (self.burst - 1)
        wait = await self._script(
            keys=[self.key], args=[repr(self.clock.now()), repr(self.rate.interval_s),
                                   repr(tolerance)]
        )
        return float(wait)

    async def acquire(self) -> None:
        # Polling is right here: the wait is known exactly and no event will announce it.
        while (wait := await self.try_acquire()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
