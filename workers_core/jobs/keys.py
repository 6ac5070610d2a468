"""Every Redis key the platform uses, in one place (prefix ``wc`` by default)."""

from __future__ import annotations

from dataclasses import dataclass

CONSUMER_GROUP = "workers"


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

    def index(self, kind: str = "all", value: str = "") -> str:
        return f"{self.prefix}:idx:{kind}" + (f":{value}" if value else "")

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def done_channel(self) -> str:
        return f"{self.prefix}:done"

    @property
    def queues(self) -> str:
        return f"{self.prefix}:queues"
