"""at_most_once() against real Redis: what is released for a retry and what never is."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from workers_core.errors import NonRetryable, OutcomeUnknown
from workers_core.jobs.side_effects import SideEffectLedger, at_most_once
from workers_core.jobs.store import JobStore


@pytest.fixture
def ledger(store: JobStore) -> SideEffectLedger:
    return SideEffectLedger(store.redis, store.keys.prefix, 3600)


async def test_done_is_returned_not_repeated(ledger: SideEffectLedger) -> None:
    calls: list[int] = []

    async def act() -> dict[str, Any]:
        calls.append(1)
        return {"id": "m1"}

    assert await at_most_once(ledger, "k", 1, act) == ({"id": "m1"}, False)
    assert await at_most_once(ledger, "k", 2, act) == ({"id": "m1"}, True)
    assert calls == [1]


async def test_a_certain_failure_releases_the_claim(ledger: SideEffectLedger) -> None:
    async def refused() -> dict[str, Any]:
        raise ConnectionRefusedError("not sent")

    with pytest.raises(ConnectionRefusedError):
        await at_most_once(ledger, "k", 1, refused)

    async def ok() -> dict[str, Any]:
        return {"ok": True}

    assert await at_most_once(ledger, "k", 2, ok) == ({"ok": True}, False)


@pytest.mark.parametrize("cut", ["outcome-unknown", "cancelled"])
async def test_an_uncertain_end_keeps_the_claim_for_good(ledger: SideEffectLedger,
                                                         cut: str) -> None:
    async def act() -> dict[str, Any]:
        if cut == "outcome-unknown":
            raise OutcomeUnknown("no answer after sending")
        await asyncio.sleep(10)  # cut by a time limit or a shutdown, maybe mid-request
        return {}

    with pytest.raises((OutcomeUnknown, TimeoutError)):
        await asyncio.wait_for(at_most_once(ledger, "k", 1, act), timeout=0.1)
    with pytest.raises(NonRetryable, match="attempt 1 may have performed"):
        await at_most_once(ledger, "k", 2, act)
