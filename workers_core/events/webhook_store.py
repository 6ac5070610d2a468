"""Webhook subscriptions, their pending deliveries, attempt log and dead letters, in Redis.

Subscriptions: ``{p}:webhooks`` (zset of ids) + ``{p}:webhook:<id>`` (hash, secret included:
it is needed to sign). Pending deliveries: ``{p}:webhook-due`` (zset ``<hook>|<event>`` → due
time) + ``{p}:webhook-pending`` (hash → event and attempts). A claimed delivery is only
leased (its due time pushed forward), so one whose replica dies is taken again: at least once.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from workers_core.clock import Clock, SystemClock
from workers_core.errors import WorkersError
from workers_core.events.models import (
    DeadLetter,
    DeliveryAttempt,
    EventFilter,
    Webhook,
    WebhookCreated,
    WebhookStatus,
)
from workers_core.jobs.keys import RedisKeys


class WebhookNotFound(WorkersError):
    status_code = 404
    problem_type = "webhook-not-found"
    retryable = False


class WebhookDisabled(WorkersError):
    status_code = 409
    problem_type = "webhook-disabled"
    retryable = False


# Due deliveries: lease each (score = lease end) and return its pending record.
_CLAIM = r"""
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, m in ipairs(due) do
  local item = redis.call('HGET', KEYS[2], m)
  if item then
    redis.call('ZADD', KEYS[1], ARGV[2], m)
    table.insert(out, item)
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
"""

# Dead letters of one hook back to pending, due now, with a fresh attempt budget.
_REDELIVER = r"""
local items = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
for _, raw in ipairs(items) do
  local d = cjson.decode(raw)
  local member = ARGV[2] .. '|' .. d.event_id
  redis.call('HSET', KEYS[3], member, cjson.encode({webhook_id=ARGV[2], event_id=d.event_id,
             event=d.raw_event, attempts=0}))
  redis.call('ZADD', KEYS[2], ARGV[1], member)
end
return #items
"""


@dataclass(frozen=True)
class PendingDelivery:
    """One event owed to one subscription; ``attempts``: POSTs made so far."""

    webhook_id: str
    event_id: str
    event: str  # the CloudEvent JSON exactly as it was emitted: the body that is signed
    attempts: int = 0

    @property
    def member(self) -> str:
        return f"{self.webhook_id}|{self.event_id}"

    @property
    def message_id(self) -> str:
        """``webhook-id``: the same for every attempt, so receivers can deduplicate."""
        return f"msg_{self.webhook_id}_{self.event_id}"

    def encode(self) -> str:
        return json.dumps({"webhook_id": self.webhook_id, "event_id": self.event_id,
                           "event": self.event, "attempts": self.attempts})

    @classmethod
    def decode(cls, raw: str) -> PendingDelivery:
        d = json.loads(raw)
        return cls(d["webhook_id"], d["event_id"], d["event"], int(d["attempts"]))


@dataclass(frozen=True)
class Destination:
    """What the dispatcher needs to send to one subscription."""

    url: str
    secret: str
    active: bool


def _webhook(fields: dict[str, str]) -> Webhook:
    return Webhook(
        id=fields["id"], url=fields["url"],
        filter=EventFilter.model_validate_json(fields["filter"]),
        description=fields.get("description", ""), status=WebhookStatus(fields["status"]),
        disabled_reason=fields.get("disabled_reason") or None,
        created_at=float(fields["created_at"]))


class WebhookStore:
    """Async access to subscriptions and deliveries; the only code that knows their keys."""

    def __init__(self, redis: Any, keys: RedisKeys, *, log_size: int = 100,
                 dead_letter_max: int = 1000, clock: Clock | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.log_size = log_size
        self.dead_letter_max = dead_letter_max
        self.clock = clock or SystemClock()
        self._claim = redis.register_script(_CLAIM)
        self._redeliver = redis.register_script(_REDELIVER)

    # --- subscriptions -------------------------------------------------------------------
    async def create(self, url: str, event_filter: EventFilter, description: str,
                     secret: str) -> WebhookCreated:
        webhook_id = "wh_" + secrets.token_hex(10)
        now = self.clock.now()
        fields = {"id": webhook_id, "url": url, "filter": event_filter.model_dump_json(),
                  "description": description, "status": WebhookStatus.ACTIVE.value,
                  "created_at": repr(now), "secret": secret}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.webhook(webhook_id), mapping=fields)
            pipe.zadd(self.keys.webhooks, {webhook_id: now})
            await pipe.execute()
        return WebhookCreated(**_webhook(fields).model_dump(), secret=secret)

    async def get(self, webhook_id: str) -> Webhook:
        fields = await self.redis.hgetall(self.keys.webhook(webhook_id))
        if not fields:
            raise WebhookNotFound(f"no webhook {webhook_id!r}")
        return _webhook(fields)

    async def list_all(self) -> list[Webhook]:
        ids = await self.redis.zrange(self.keys.webhooks, 0, -1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for webhook_id in ids:
                pipe.hgetall(self.keys.webhook(webhook_id))
            rows = await pipe.execute()
        return [_webhook(fields) for fields in rows if fields]

    async def delete(self, webhook_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.webhooks, webhook_id)
            pipe.delete(self.keys.webhook(webhook_id), self.keys.webhook(webhook_id, "deliveries"),
                        self.keys.webhook(webhook_id, "dead"))
            removed, _ = await pipe.execute()
        if not removed:
            raise WebhookNotFound(f"no webhook {webhook_id!r}")

    async def disable(self, webhook_id: str, reason: str) -> None:
        key = self.keys.webhook(webhook_id)
        if await self.redis.exists(key):
            await self.redis.hset(key, mapping={"status": WebhookStatus.DISABLED.value,
                                                "disabled_reason": reason})

    async def destinations(self, webhook_ids: set[str]) -> dict[str, Destination]:
        """URL, secret and state of each existing subscription among ``webhook_ids``."""
        ids = sorted(webhook_ids)
        async with self.redis.pipeline(transaction=False) as pipe:
            for webhook_id in ids:
                pipe.hmget(self.keys.webhook(webhook_id), "url", "secret", "status")
            rows = await pipe.execute()
        return {i: Destination(url, secret, status == WebhookStatus.ACTIVE.value)
                for i, (url, secret, status) in zip(ids, rows, strict=True) if url}

    # --- pending deliveries --------------------------------------------------------------
    async def enqueue_and_ack(self, deliveries: list[PendingDelivery], stream: str, group: str,
                              entry_ids: list[str]) -> None:
        """Owe each delivery (due now) and acknowledge the events it came from, together.

        Doing an event twice (a replica died before the ack) owes nothing twice: NX."""
        now = self.clock.now()
        async with self.redis.pipeline(transaction=True) as pipe:
            for d in deliveries:
                pipe.hsetnx(self.keys.webhook_pending, d.member, d.encode())
                pipe.zadd(self.keys.webhook_due, {d.member: now}, nx=True)
            if entry_ids:
                pipe.xack(stream, group, *entry_ids)
            await pipe.execute()

    async def claim_due(self, lease_s: float, limit: int) -> list[PendingDelivery]:
        now = self.clock.now()
        raw = await self._claim(keys=[self.keys.webhook_due, self.keys.webhook_pending],
                                args=[repr(now), repr(now + lease_s), limit])
        return [PendingDelivery.decode(r) for r in raw]

    async def next_due_in(self) -> float | None:
        """Seconds until the next pending delivery is due (0 if one is), None if none."""
        first = await self.redis.zrange(self.keys.webhook_due, 0, 0, withscores=True)
        return max(first[0][1] - self.clock.now(), 0.0) if first else None

    async def delivered(self, d: PendingDelivery) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.webhook_due, d.member)
            pipe.hdel(self.keys.webhook_pending, d.member)
            await pipe.execute()

    async def retry_at(self, d: PendingDelivery, due: float) -> None:
        """Record the attempt made (``d.attempts`` already counts it) and when to try again."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.webhook_pending, d.member, d.encode())
            pipe.zadd(self.keys.webhook_due, {d.member: due})
            await pipe.execute()

    async def dead_letter(self, d: PendingDelivery, error: str) -> None:
        letter = {"message_id": d.message_id, "event_id": d.event_id, "raw_event": d.event,
                  "attempts": d.attempts, "last_error": error, "dead_at": self.clock.now()}
        dead = self.keys.webhook(d.webhook_id, "dead")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.webhook_due, d.member)
            pipe.hdel(self.keys.webhook_pending, d.member)
            pipe.lpush(dead, json.dumps(letter))
            pipe.ltrim(dead, 0, self.dead_letter_max - 1)
            await pipe.execute()

    async def drop(self, d: PendingDelivery) -> None:
        """Forget a delivery whose subscription was deleted."""
        await self.delivered(d)

    # --- what happened -------------------------------------------------------------------
    async def record(self, webhook_id: str, attempt: DeliveryAttempt) -> None:
        key = self.keys.webhook(webhook_id, "deliveries")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, attempt.model_dump_json())
            pipe.ltrim(key, 0, self.log_size - 1)
            await pipe.execute()

    async def deliveries(self, webhook_id: str, limit: int) -> list[DeliveryAttempt]:
        await self.get(webhook_id)
        raw = await self.redis.lrange(self.keys.webhook(webhook_id, "deliveries"), 0, limit - 1)
        return [DeliveryAttempt.model_validate_json(r) for r in raw]

    async def dead_letters(self, webhook_id: str, limit: int) -> list[DeadLetter]:
        await self.get(webhook_id)
        raw = await self.redis.lrange(self.keys.webhook(webhook_id, "dead"), 0, limit - 1)
        letters = []
        for r in raw:
            d = json.loads(r)
            letters.append(DeadLetter(message_id=d["message_id"], event=json.loads(d["raw_event"]),
                                      attempts=d["attempts"], last_error=d["last_error"],
                                      dead_at=d["dead_at"]))
        return letters

    async def redeliver(self, webhook_id: str) -> int:
        """Every dead letter of an active subscription owed again now; how many."""
        hook = await self.get(webhook_id)
        if hook.status is not WebhookStatus.ACTIVE:
            raise WebhookDisabled(f"webhook {webhook_id} is disabled ({hook.disabled_reason});"
                                   " register the receiver again")
        count: int = await self._redeliver(
            keys=[self.keys.webhook(webhook_id, "dead"), self.keys.webhook_due,
                  self.keys.webhook_pending],
            args=[repr(self.clock.now()), webhook_id])
        return count
