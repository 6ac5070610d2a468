"""What the SPV API clients (e-Factura, e-Transport) share: the API host with ANAF's
1000 calls/min as one budget for the cluster, and calls that carry the OAuth Bearer token
(polling ``stareMesaj`` to a final state: ``workers_core.jobs.polling``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import redis.asyncio as aioredis

from workers_core.config import Settings
from workers_core.integrations.anaf.errors import (
    AnafNotAuthorised,
    AnafRateLimited,
    AnafUnauthorized,
)
from workers_core.integrations.anaf.http import ROMANIA, AnafHttp, seconds_to_romanian_midnight
from workers_core.integrations.anaf.oauth import AnafOAuth
from workers_core.jobs.keys import RedisKeys
from workers_core.ratelimit import Rate, RedisRateLimiter

API_RATE = Rate(1000, 60.0)  # limiteApeluriAPI.txt: 1000 calls per minute, all endpoints


def api_host(settings: Settings, redis: aioredis.Redis) -> AnafHttp:
    """The OAuth API host; one rate-limit key for every service on it."""
    key = RedisKeys(settings.redis_prefix).anaf_rate("api")
    limiter = RedisRateLimiter(redis, key, API_RATE, burst=50)
    return AnafHttp(settings.anaf_api_url, timeout_s=settings.anaf_timeout_s, limiters=[limiter])


def oauth_if_configured(settings: Settings, redis: aioredis.Redis) -> AnafOAuth | None:
    """None without a client id: public calls still work, the others say what to set."""
    return AnafOAuth.from_settings(settings, redis) if settings.anaf_client_id else None


class DailyQuota:
    """A per-message daily budget (stareMesaj, descarcare) shared through Redis.

    ANAF counts per Romanian calendar day; so does the key.
    """

    def __init__(self, redis: aioredis.Redis, prefix: str, what: str, budget: int) -> None:
        self.redis: Any = redis
        self.keys = RedisKeys(prefix)
        self.what = what
        self.budget = budget

    def _key(self, message_id: int) -> str:
        day = dt.datetime.now(ROMANIA).strftime("%Y%m%d")
        return self.keys.anaf_quota(self.what, day, message_id)

    async def take(self, message_id: int) -> int:
        """Spend one call on ``message_id``; raises AnafRateLimited past the budget."""
        key = self._key(message_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 2 * 24 * 3600)
            used, _ = await pipe.execute()
        if int(used) > self.budget:
            await self.redis.decr(key)
            raise AnafRateLimited(
                f"{self.what} budget of {self.budget} calls for message {message_id} is spent "
                "for today (ANAF's daily limit); waiting for midnight in Romania",
                after_s=seconds_to_romanian_midnight(),
            )
        return int(used)

    async def used(self, message_id: int) -> int:
        return int(await self.redis.get(self._key(message_id)) or 0)


class SpvClient:
    """Base of the SPV clients: ``_authorised(send)`` and closing what it holds."""

    service: ClassVar[str]

    def __init__(self, api: AnafHttp, oauth: AnafOAuth | None) -> None:
        self.api = api
        self.oauth = oauth

    async def aclose(self) -> None:
        await self.api.aclose()
        if self.oauth is not None:
            await self.oauth.aclose()

    async def _authorised(self, send: Callable[[dict[str, str]], Awaitable[Any]]) -> Any:
        """``send(headers)`` with a Bearer token; one forced refresh after a 401 (ANAF
        answers 401 before it acts, so sending again cannot act twice)."""
        if self.oauth is None:
            raise AnafNotAuthorised(
                "WORKERS_ANAF_CLIENT_ID and WORKERS_ANAF_CLIENT_SECRET must be set, then "
                f"`workers-core anaf login`, before calling ANAF's {self.service} API"
            )
        token = await self.oauth.access_token()
        try:
            return await send({"Authorization": f"Bearer {token}"})
        except AnafUnauthorized as exc:
            if exc.status != 401:
                raise
        tokens = await self.oauth.refresh(force=True)
        return await send({"Authorization": f"Bearer {tokens.access_token.get_secret_value()}"})

