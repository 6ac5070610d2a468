"""At most once per key: a record written *before* an outside side effect and checked on
every retry (e-mail, e-Factura upload, e-Transport, REGES).

States: absent → ``started`` (claimed by one attempt) → ``done`` (with what it produced).
A retry that finds ``done`` returns the recorded outcome instead of acting again; one that
finds ``started`` knows an earlier attempt may have acted and must not guess: it fails
(``at_most_once``), or, where the other side can be asked, looks there first
(``at_most_once_or_found``: ANAF uploads).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from workers_core.errors import NonRetryable, OutcomeUnknown, Retry, StoreUnavailable
from workers_core.jobs.keys import RedisKeys
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
        self.keys = RedisKeys(prefix)
        self.ttl_s = ttl_s

    def _key(self, key: str) -> str:
        return self.keys.side_effect(key)

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


class Reuse(StrEnum):
    """How ``at_most_once_or_found`` got its outcome."""

    NEW = "new"  # this call acted
    RECORDED = "recorded"  # an earlier attempt (or job) acted and recorded it
    FOUND = "found"  # an earlier attempt's answer was lost; found at the other side


@dataclass(frozen=True)
class LostAnswerLookup:
    """Where and how long to look for an effect whose answer was lost before acting again.

    ``find(since)`` returns the outcome recorded at the other side since ``since`` (wall
    clock), or None. ``where`` names the place in messages ("the SPV message list"),
    ``where_short`` when it is not there yet.
    """

    find: Callable[[float], Awaitable[dict[str, Any] | None]]
    grace_s: float
    retry_s: float
    where: str
    where_short: str
    margin_s: float = 120.0  # their clock and ours


async def at_most_once_or_found(
    ledger: SideEffectLedger, key: str, attempt: int, *,
    fingerprint: str, label: str,
    act: Callable[[], Awaitable[dict[str, Any]]],
    lookup: LostAnswerLookup,
    conflict: Callable[[dict[str, Any]], str],
    note: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Reuse]:
    """``at_most_once`` for effects the other side can be asked about (ANAF uploads).

    The claim carries ``fingerprint`` (the content's hash): a recorded outcome with another
    fingerprint is refused with ``conflict(outcome)``. A lost answer (``OutcomeUnknown``)
    keeps the claim and asks for a retry; the retry looks with ``lookup.find`` instead of
    acting, and acts again only when nothing turned up within ``lookup.grace_s``.
    """
    note = {"sha256": fingerprint, **(note or {})}
    record = await ledger.claim(key, attempt, note)
    if record is not None and record.state is EffectState.DONE:
        outcome = dict(record.outcome or {})
        if outcome.get("sha256") != fingerprint:
            raise NonRetryable(conflict(outcome))
        return outcome, Reuse.RECORDED
    if record is not None:  # "started": an earlier attempt may have acted, answer lost
        claimed_at = record.claimed_at or time.time()
        found = await lookup.find(claimed_at - lookup.margin_s)
        if found is not None:
            outcome = {**found, "sha256": fingerprint}
            await ledger.complete(key, attempt, outcome)
            return outcome, Reuse.FOUND
        waited = time.time() - claimed_at
        if waited < lookup.grace_s:
            raise Retry(
                f"an earlier attempt's upload of {label} may have reached ANAF "
                f"{waited:.0f} s ago and is not in {lookup.where_short} yet; looking again "
                f"(uploading again only after {lookup.grace_s:.0f} s without it)",
                after_s=lookup.retry_s,
            )
        await ledger.reclaim(key, attempt, note)
    try:
        outcome = await act()
    except OutcomeUnknown as exc:  # the claim stays: the next attempt looks it up
        raise Retry(
            f"{exc.message}; the next attempt looks for it in {lookup.where} "
            "before uploading again",
            after_s=lookup.retry_s,
        ) from exc
    except asyncio.CancelledError:  # cut mid-request: it may have arrived
        raise
    except Exception:
        await ledger.release(key)  # certainly not done (refused, never sent)
        raise
    outcome = {**outcome, "sha256": fingerprint, "at": time.time()}
    await ledger.complete(key, attempt, outcome)
    return outcome, Reuse.NEW
