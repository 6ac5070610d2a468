"""Polling an outside service until its answer is final, within one job attempt: doubling
waits, and ``Retry`` when the attempt's share of time is up so a later attempt resumes
(ANAF's ``stareMesaj`` for e-Factura and e-Transport, REGES's result queue)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from workers_core.errors import Retry


class _Status(Protocol):
    @property
    def final(self) -> bool: ...


StatusT = TypeVar("StatusT", bound=_Status)


@dataclass(frozen=True)
class PollPolicy:
    """Doubling waits from ``first_s`` up to ``max_interval_s``; after ``in_job_s`` the
    attempt hands back (``Retry``) and a later one resumes."""

    first_s: float
    max_interval_s: float
    in_job_s: float


async def poll_until_final(
    query: Callable[[], Awaitable[StatusT]],
    policy: PollPolicy,
    pending: str,
    on_state: Callable[[StatusT], Awaitable[None]] | None = None,
) -> StatusT:
    """Ask ``query`` until its answer is final, or raise ``Retry(pending)`` when this
    attempt's time is up (waits double: each query may spend a daily quota)."""
    delay = policy.first_s
    deadline = time.monotonic() + policy.in_job_s
    while True:
        status = await query()
        if on_state is not None:
            await on_state(status)
        if status.final:
            return status
        if time.monotonic() + delay > deadline:
            raise Retry(pending, after_s=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, policy.max_interval_s)
