"""At most once per key: a record written *before* an outside side effect and checked on
every retry (e-mail, e-Factura upload, e-Transport, REGES).

States: absent → ``started`` (claimed by one attempt) → ``done`` (with what it produced).
A retry that finds ``done`` returns the recorded outcome instead of acting again; one that
finds ``started`` knows an earlier attempt may have acted and must not guess.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from workers_core.errors import NonRetryable, OutcomeUnknown, StoreUnavailable
from workers_core.jobs.store import UNAVAILABLE


class EffectState(StrEnum):
    STARTED = "started"
    DONE = "done"


@dataclass(frozen=True)
class EffectRecord:
    state: EffectState
    attempt: int
    outcome: dict[str, Any] | None = None
    claimed_at: float | None = None  # wall clock of the claim: how long ago it may have acted
    note: dict[str, Any] | None = None  # what the claimant recorded with it (e.g. a hash)


class SideEffectLedger:
    def __init__(self, redis: Any, prefix: str, ttl_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s

    def _key(self, key: str) -> str:
        return f"{self.prefix}:effect:{key}"

    async def claim(
        self, key: str, attempt: int, note: dict[str, Any] | None = None
    ) -> EffectRecord | None:
        """Claim the side effect for this attempt; returns the existing record if any."""
        value = self._started(attempt, note)
        try:
            if await self.redis.set(self._key(key), value, nx=True, ex=self.ttl_s):
                return None
            raw = await self.redis.get(self._key(key))
        except UNAVAILABLE as exc:
            raise StoreUnavailable("Redis is unreachable") from exc
        if raw is None:  # expired between the two calls
            return await self.claim(key, attempt, note)
        data = json.loads(raw)
        return EffectRecord(EffectState(data["state"]), int(data["attempt"]),
                            data.get("outcome"), data.get("at"), data.get("note"))

    @staticmethod
    def _started(attempt: int, note: dict[str, Any] | None) -> str:
        return json.dumps({"state": EffectState.STARTED, "attempt": attempt,
                           "at": time.time(), "note": note})

    async def reclaim(self, key: str, attempt: int, note: dict[str, Any] | None = None) -> None:
        """Take over a ``started`` claim once the caller has proved the effect never happened
        (e.g. looked for it at the other side long enough)."""
        await self.redis.set(self._key(key), self._started(attempt, note), ex=self.ttl_s)

    async def complete(self, key: str, attempt: int, outcome: dict[str, Any]) -> None:
        value = json.dumps({"state": EffectState.DONE, "attempt": attempt, "outcome": outcome})
        await self.redis.set(self._key(key), value, ex=self.ttl_s)

    async def release(self, key: str) -> None:
        """The side effect certainly did not happen (e.g. refused before DATA): allow a retry."""
        await self.redis.delete(self._key(key))


async def at_most_once(
    ledger: SideEffectLedger, key: str, attempt: int,
    act: Callable[[], Awaitable[dict[str, Any]]],
) -> tuple[dict[str, Any], bool]:
    """Run ``act`` once per ``key``; returns ``(outcome, duplicate)``.

    ``act`` raising ``OutcomeUnknown`` (a timeout after the request left) keeps the claim,
    so no later attempt acts again; so does a cancellation (time limit, shutdown), which may
    cut a request that already left. Any other error means it certainly did not happen,
    and the claim is released for the retry.
    """
    record = await ledger.claim(key, attempt)
    if record is not None and record.state is EffectState.DONE:
        return dict(record.outcome or {}), True
    if record is not None:
        raise NonRetryable(
            f"attempt {record.attempt} may have performed {key!r} before it was lost; "
            "not doing it again (at most once)"
        )
    try:
        outcome = await act()
    except OutcomeUnknown:
        raise
    except Exception:
        await ledger.release(key)
        raise
    await ledger.complete(key, attempt, outcome)
    return outcome, False
