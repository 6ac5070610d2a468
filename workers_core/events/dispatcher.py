"""The webhook dispatcher: one per gateway replica, a ``step()`` and a thin loop.

A step (1) takes events from ``{p}:events`` through the consumer group ``webhooks`` (so each
event is fanned out by one replica; XAUTOCLAIM takes over a dead replica's unacknowledged
ones), (2) owes each matching subscription a delivery and acknowledges the events in the
same transaction, and (3) sends the deliveries that are due. A failed POST is owed again
after exponential backoff with jitter; after ``webhook_max_attempts`` it becomes a dead
letter. At least once: receivers deduplicate on ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import replace
from typing import Any

import structlog
from redis import exceptions as redis_errors

from workers_core.clock import Clock, SystemClock
from workers_core.config import Settings
from workers_core.events.destinations import DestinationPolicy
from workers_core.events.models import DeliveryAttempt, DeliveryOutcome, WebhookStatus
from workers_core.events.sender import SendResult, WebhookSender
from workers_core.events.signature import signed_headers
from workers_core.events.webhook_store import Destination, PendingDelivery, WebhookStore
from workers_core.jobs.keys import RedisKeys
from workers_core.jobs.retry import RetryPolicy

log = structlog.get_logger("workers_core.webhooks")

GROUP = "webhooks"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"  # CloudEvents HTTP, structured
READ_COUNT = 100


class WebhookDispatcher:
    """Fans lifecycle events out to subscriptions and delivers them, retrying with backoff."""

    def __init__(self, redis: Any, store: WebhookStore, sender: WebhookSender, *,
                 consumer: str, retry: RetryPolicy, block_ms: int, claim_idle_s: float,
                 max_parallel: int, clock: Clock | None = None) -> None:
        self.redis = redis
        self.store = store
        self.sender = sender
        self.stream = store.keys.events
        self.consumer = consumer
        self.retry = retry
        self.block_ms = block_ms
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.lease_s = max(claim_idle_s, sender.timeout_s * 2)
        self.max_parallel = max_parallel
        self.clock = clock or SystemClock()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, redis: Any, consumer: str) -> WebhookDispatcher:
        keys = RedisKeys(settings.redis_prefix)
        store = WebhookStore(redis, keys, log_size=settings.webhook_delivery_log_size,
                             dead_letter_max=settings.webhook_dead_letter_max)
        sender = WebhookSender(DestinationPolicy.from_settings(settings),
                               settings.webhook_timeout_s)
        retry = RetryPolicy(max_attempts=settings.webhook_max_attempts,
                            backoff_base_s=settings.webhook_backoff_base_s,
                            backoff_max_s=settings.webhook_backoff_max_s)
        # A blocked read must end before the socket timeout would cut it.
        block_ms = min(settings.webhook_dispatch_block_ms,
                       int(settings.redis_socket_timeout_s * 1000) - 500)
        return cls(redis, store, sender, consumer=consumer, retry=retry,
                   block_ms=max(block_ms, 1), claim_idle_s=settings.webhook_claim_idle_s,
                   max_parallel=settings.webhook_max_parallel)

    async def ensure_group(self) -> None:
        """The consumer group starts at the stream's end: events before it are history."""
        with contextlib.suppress(redis_errors.ResponseError):  # BUSYGROUP: already there
            await self.redis.xgroup_create(self.stream, GROUP, id="$", mkstream=True)

    # --- one step --------------------------------------------------------------------------
    async def step(self) -> int:
        """Fan out new events, then send what is due; returns the deliveries attempted."""
        entries = await self._take_events()
        if entries:
            await self._fan_out(entries)
        due = await self.store.claim_due(self.lease_s, self.max_parallel)
        if not due:
            return 0
        destinations = await self.store.destinations({d.webhook_id for d in due})
        await asyncio.gather(*(self._deliver(d, destinations.get(d.webhook_id)) for d in due))
        return len(due)

    async def _take_events(self) -> list[tuple[str, dict[str, str]]]:
        claimed = await self.redis.xautoclaim(self.stream, GROUP, self.consumer,
                                              self.claim_idle_ms, "0-0", count=READ_COUNT)
        if claimed[1]:
            return [(entry_id, fields) for entry_id, fields in claimed[1] if fields]
        wait_s = await self.store.next_due_in()
        block = self.block_ms if wait_s is None else int(min(self.block_ms, wait_s * 1000))
        reply = await self.redis.xreadgroup(GROUP, self.consumer, {self.stream: ">"},
                                            count=READ_COUNT, block=block if block > 0 else None)
        return [(entry_id, fields) for _, batch in reply or [] for entry_id, fields in batch]

    async def _fan_out(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        hooks = [h for h in await self.store.list_all() if h.status is WebhookStatus.ACTIVE]
        owed: list[PendingDelivery] = []
        for entry_id, fields in entries:
            raw = fields.get("event", "")
            try:
                event = json.loads(raw)
            except ValueError:
                log.warning("webhook_event_unreadable", entry=entry_id)
                continue
            event_id = str(event.get("id") or entry_id)
            owed += [PendingDelivery(h.id, event_id, raw) for h in hooks if h.filter.matches(event)]
        await self.store.enqueue_and_ack(owed, self.stream, GROUP, [e for e, _ in entries])

    # --- one delivery ----------------------------------------------------------------------
    async def _deliver(self, d: PendingDelivery, dest: Destination | None) -> None:
        if dest is None:  # the subscription was deleted meanwhile
            await self.store.drop(d)
            return
        if not dest.active:
            await self.store.dead_letter(d, "webhook disabled")
            return
        body = d.event.encode()
        headers = {**signed_headers(dest.secret, d.message_id, int(self.clock.now()), body),
                   "content-type": CONTENT_TYPE}
        result = await self.sender.post(dest.url, headers, body)
        d = replace(d, attempts=d.attempts + 1)
        outcome, next_at = await self._settle(d, result)
        event_type = str(json.loads(d.event).get("type", ""))
        await self.store.record(d.webhook_id, DeliveryAttempt(
            message_id=d.message_id, event_id=d.event_id, event_type=event_type,
            attempt=d.attempts, at=self.clock.now(), outcome=outcome,
            status_code=result.status_code, error=result.error,
            duration_ms=result.duration_ms, next_attempt_at=next_at))
        if outcome is not DeliveryOutcome.DELIVERED:
            log.info("webhook_delivery_failed", webhook=d.webhook_id, event_id=d.event_id,
                     attempt=d.attempts, outcome=outcome.value, error=result.error)

    async def _settle(self, d: PendingDelivery,
                      result: SendResult) -> tuple[DeliveryOutcome, float | None]:
        if result.ok:
            await self.store.delivered(d)
            return DeliveryOutcome.DELIVERED, None
        error = result.error or "failed"
        if result.gone:  # the receiver says this endpoint is gone for good
            await self.store.disable(d.webhook_id, "the receiver answered 410 Gone")
            await self.store.dead_letter(d, f"{error} (webhook disabled)")
            return DeliveryOutcome.DEAD, None
        if result.blocked or d.attempts >= self.retry.max_attempts:
            await self.store.dead_letter(d, error)
            return DeliveryOutcome.DEAD, None
        delay = self.retry.delay_s(d.attempts)
        if result.retry_after_s is not None:  # the receiver asked to wait (429 / 503)
            delay = max(delay, min(result.retry_after_s, self.retry.backoff_max_s))
        next_at = self.clock.now() + delay
        await self.store.retry_at(d, next_at)
        return DeliveryOutcome.RETRYING, next_at

    # --- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Steps until cancelled; an error is logged and the loop goes on."""
        grouped = False
        while True:
            try:
                if not grouped:
                    await self.ensure_group()
                    grouped = True
                await self.step()
            except asyncio.CancelledError:
                raise
            except redis_errors.ResponseError as exc:
                grouped = "NOGROUP" not in str(exc)  # the stream was removed: group again
                if grouped:
                    log.warning("webhook_dispatch_error", error=str(exc))
                    await asyncio.sleep(1)
            except Exception as exc:
                log.warning("webhook_dispatch_error", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1)

    def start(self) -> None:
        """Run the loop in the background (in the caller's event loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.sender.aclose()
