"""Long-polling: wake ``GET /v1/jobs/{id}?wait=N`` callers when their job finishes.

One pub/sub subscription per gateway replica to the store's "done" channel; each waiter
also re-reads the job on a slow timer, so a missed message costs latency, never a result.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import redis.asyncio as aioredis
import structlog

log = structlog.get_logger("workers_core.completion")


class CompletionWaiter:
    def __init__(self, redis: aioredis.Redis, channel: str) -> None:
        self.redis = redis
        self.channel = channel
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._listener: asyncio.Task[None] | None = None

    async def wait(self, job_id: str, timeout_s: float) -> None:
        """Return when ``job_id`` is announced as finished, or after ``timeout_s``."""
        self._ensure_listening()
        event = asyncio.Event()
        self._waiters[job_id].add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout=timeout_s)
        except TimeoutError:
            pass
        finally:
            self._waiters[job_id].discard(event)
            if not self._waiters[job_id]:
                del self._waiters[job_id]

    def _ensure_listening(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            for event in self._waiters.get(message["data"], ()):
                                event.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("completion_listener_reconnecting", error=str(exc))
                await asyncio.sleep(1)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
