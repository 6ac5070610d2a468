"""REGES's result queue drained into Redis, so no job loses another job's result.

The queue is one FIFO per employer (or ``consumerId``), shared by every job and replica:
whoever reads a result stores it under its receipt id, and the job that owns that receipt
finds it there. Reads are serialised by a Redis lock (two readers of ``ReadMessage`` would
get the same result and then commit twice, skipping the next one), and each result is
stored before ``CommitRead``: a crash in between reads it again, and storing is idempotent
(a hash field per result body).

Keys (``{prefix}:reges:...``): ``results:<receipt>`` (hash), ``receipt-of:<message id>``,
``status:<message id>`` (the final state), ``drain-lock``.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from workers_core.errors import StoreUnavailable
from workers_core.integrations.reges import MessageResult, RegesClient
from workers_core.jobs.keys import RedisKeys
from workers_core.jobs.store import UNAVAILABLE

RECORD_TTL_S = 400 * 24 * 3600  # a registered contract stays registered: outlive a year
DRAIN_BATCH = 200  # results read per drain; the next drain goes on
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

State = Literal["unknown", "queued", "succeeded", "failed"]


class MessageStatus(BaseModel):
    """Where a message stands: ``final`` once REGES expects no more results for it."""

    message_id: UUID | None = None
    receipt_id: UUID | None = None
    state: State = "unknown"
    final: bool = False
    refs: list[UUID] = Field(default_factory=list, description="Result Ref ids, in order.")
    sec_refs: list[UUID] = Field(default_factory=list)
    results: list[MessageResult] = Field(default_factory=list)

    @classmethod
    def of(cls, message_id: UUID | None, receipt_id: UUID,
           results: list[MessageResult]) -> MessageStatus:
        if not results:
            return cls(message_id=message_id, receipt_id=receipt_id, state="queued")
        failed = any(r.code == "FAIL" or r.code_type == "ERROR" for r in results)
        final = not results[-1].related_results_expected
        return cls(
            message_id=message_id or results[0].message_id,
            receipt_id=receipt_id,
            state="failed" if failed else "succeeded" if final else "queued",
            final=final or failed,
            refs=[r.ref for r in results if r.ref is not None],
            sec_refs=[r.sec_ref for r in results if r.sec_ref is not None],
            results=results,
        )


class ResultInbox:
    """Results by receipt id in Redis, filled from REGES's queue by ``drain``."""

    def __init__(self, redis: Any, prefix: str, *, lock_ttl_s: float) -> None:
        self.redis = redis
        self.keys = RedisKeys(prefix)
        self.lock_ttl_ms = int(lock_ttl_s * 1000)

    def _k(self, *parts: object) -> str:
        return self.keys.reges(*parts)

    async def drain(self, client: RegesClient) -> int | None:
        """Read, store and commit what the queue holds; None if another reader holds it."""
        token = secrets.token_hex(8)
        try:
            if not await self.redis.set(self._k("drain-lock"), token, nx=True,
                                        px=self.lock_ttl_ms):
                return None
        except UNAVAILABLE as exc:
            raise StoreUnavailable("Redis is unreachable") from exc
        try:
            stored = 0
            while stored < DRAIN_BATCH:
                result = await client.read_result()
                if result is None:
                    break
                await self.store(result)
                await client.commit_read()
                stored += 1
            return stored
        finally:
            await self.redis.eval(_RELEASE, 1, self._k("drain-lock"), token)

    async def store(self, result: MessageResult) -> None:
        body = result.model_dump_json()
        field = hashlib.sha256(body.encode()).hexdigest()[:24]
        key = self._k("results", result.receipt_id)
        count = await self.redis.hlen(key)
        async with self.redis.pipeline(transaction=True) as pipe:
            # "<arrival order>|<json>": hash fields keep no order of their own.
            pipe.hsetnx(key, field, f"{count:06d}|{body}")
            pipe.expire(key, RECORD_TTL_S)
            if result.message_id is not None:
                pipe.set(self._k("receipt-of", result.message_id), str(result.receipt_id),
                         ex=RECORD_TTL_S)
            await pipe.execute()

    async def record_receipt(self, message_id: UUID, receipt_id: UUID) -> None:
        await self.redis.set(self._k("receipt-of", message_id), str(receipt_id), ex=RECORD_TTL_S)

    async def receipt_of(self, message_id: UUID) -> UUID | None:
        value = await self.redis.get(self._k("receipt-of", message_id))
        return UUID(value) if value else None

    async def results(self, receipt_id: UUID) -> list[MessageResult]:
        raw = await self.redis.hvals(self._k("results", receipt_id))
        rows = sorted(str(v).split("|", 1) for v in raw)
        return [MessageResult.model_validate_json(body) for _, body in rows]

    async def status(self, message_id: UUID | None, receipt_id: UUID) -> MessageStatus:
        return MessageStatus.of(message_id, receipt_id, await self.results(receipt_id))

    async def save_final(self, status: MessageStatus) -> None:
        """The final state against the message id (``reges.status`` by message id)."""
        if status.message_id is not None:
            await self.redis.set(self._k("status", status.message_id),
                                 status.model_dump_json(), ex=RECORD_TTL_S)

    async def final_of(self, message_id: UUID) -> MessageStatus | None:
        raw = await self.redis.get(self._k("status", message_id))
        return MessageStatus.model_validate_json(raw) if raw else None
