"""What the SPV task modules (e-Factura, e-Transport) share: Redis and one ANAF client per
replica, made on first use, so a platform without ANAF credentials still starts and its jobs
fail saying why. The REGES tasks use the same base with their own client and health check."""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Protocol, TypeVar

import redis.asyncio as aioredis

from workers_core.errors import NonRetryable
from workers_core.integrations.anaf.cui import InvalidCui, normalise_cui
from workers_core.jobs.retry import RetryPolicy
from workers_core.tasks.base import Health, Resources

# An uploaded document stays uploaded: the record outlives ANAF's 60-day message window and
# a fiscal year, so a late replay of the same invoice or shipment is still recognised.
UPLOAD_RECORD_TTL_S = 400 * 24 * 3600


class _Closable(Protocol):
    async def aclose(self) -> None: ...


ClientT = TypeVar("ClientT", bound=_Closable)


class SpvTaskBase(Generic[ClientT]):
    """Mixed in before ``Task``; subclasses say how to make their client. The defaults fit
    one SPV call (status, download, list): waiting on ANAF, little CPU."""

    settings: Any
    _client: ClientT | None = None
    resources: ClassVar[Resources] = Resources(num_cpus=0.1)
    concurrency: ClassVar[int] = 4
    time_limit_s: ClassVar[float] = 300.0
    retry: ClassVar[RetryPolicy] = RetryPolicy(max_attempts=5, backoff_base_s=10, backoff_max_s=600)

    def make_client(self, redis: Any) -> ClientT:
        raise NotImplementedError

    async def setup(self) -> None:
        self.redis: Any = aioredis.from_url(self.settings.redis_url, **self.settings.redis_kwargs())

    def client(self) -> ClientT:
        if self._client is None:
            self._client = self.make_client(self.redis)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        await self.redis.aclose()

    async def health(self) -> Health:
        """Redis answers and the API host accepts a connection (no request, no quota)."""
        from workers_core.registry.probes import check_endpoint

        checks = {"anaf": "configured" if self.settings.anaf_client_id else "no client id",
                  "anaf_api": await check_endpoint(self.settings.anaf_api_url,
                                                   self.settings.health_check_timeout_s)}
        try:
            await self.redis.ping()
        except Exception as exc:
            return Health(ok=False, checks={**checks, "redis": f"error: {type(exc).__name__}"})
        return Health(ok=checks["anaf_api"].startswith("ok"), checks={**checks, "redis": "ok"})


def cif_of(text: str) -> int:
    """A payload's CIF as ANAF wants it (digits, check digit verified)."""
    try:
        return normalise_cui(text)
    except InvalidCui as exc:
        raise NonRetryable(f"cif {text!r}: {exc.reason}") from exc
