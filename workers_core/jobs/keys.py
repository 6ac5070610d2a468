"""Every Redis key the platform uses, in one place (prefix ``wc`` by default)."""

from __future__ import annotations

from dataclasses import dataclass

CONSUMER_GROUP = "workers"
# Fields of the per-queue pool controls hash (jobs/pool_controls.py).
POOL_DRAINING = "draining"
POOL_TARGET_REPLICAS = "target_replicas"


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = "wc"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}:idem:{key}"

    def stream(self, queue: str) -> str:
        return f"{self.prefix}:q:{queue}"

    def delayed(self, queue: str) -> str:
        return f"{self.prefix}:delayed:{queue}"

    def dead_letters(self, queue: str) -> str:
        return f"{self.prefix}:dlq:{queue}"

    def progress(self, job_id: str) -> str:
        return f"{self.prefix}:progress:{job_id}"

    def consumers(self, queue: str) -> str:
        return f"{self.prefix}:consumers:{queue}"

    def pool_controls(self, queue: str) -> str:
        """hash: an operator's drain flag and replica target for the queue's pool."""
        return f"{self.prefix}:pool:{queue}"

    def index(self, kind: str = "all", value: str = "") -> str:
        return f"{self.prefix}:idx:{kind}" + (f":{value}" if value else "")

    def submit_quota(self, client: str) -> str:
        return f"{self.prefix}:quota:submit:{client}"

    def schedule(self, schedule_id: str) -> str:
        return f"{self.prefix}:schedule:{schedule_id}"

    def schedule_fires(self, schedule_id: str) -> str:
        return f"{self.prefix}:schedule:{schedule_id}:fires"

    @property
    def schedules(self) -> str:
        """Every schedule id (score 0: listed by id)."""
        return f"{self.prefix}:schedules"

    @property
    def schedules_due(self) -> str:
        """Active schedule ids by next fire time (epoch seconds)."""
        return f"{self.prefix}:schedules:due"

    @property
    def audit(self) -> str:
        return f"{self.prefix}:audit"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def webhooks(self) -> str:
        """zset of webhook subscription ids, scored by creation time."""
        return f"{self.prefix}:webhooks"

    def webhook(self, webhook_id: str, part: str = "") -> str:
        """A subscription's hash, or one of its parts (``deliveries``, ``dead``)."""
        return f"{self.prefix}:webhook:{webhook_id}" + (f":{part}" if part else "")

    @property
    def webhook_due(self) -> str:
        """zset of pending deliveries (``<webhook>|<event>``) scored by when they are due."""
        return f"{self.prefix}:webhook-due"

    @property
    def webhook_pending(self) -> str:
        """hash: pending delivery → its event and attempt count."""
        return f"{self.prefix}:webhook-pending"

    @property
    def done_channel(self) -> str:
        return f"{self.prefix}:done"

    @property
    def queues(self) -> str:
        return f"{self.prefix}:queues"
