"""Every Redis key the platform uses, in one place (prefix ``wc`` by default)."""

from __future__ import annotations

from dataclasses import dataclass

CONSUMER_GROUP = "workers"
# Fields of the per-queue pool controls hash (jobs/pool_controls.py).
POOL_DRAINING = "draining"
POOL_TARGET_REPLICAS = "target_replicas"


class FixedKey:
    """A key with no variable part, read as an attribute of ``RedisKeys``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, keys: RedisKeys, owner: type[RedisKeys]) -> str:
        return f"{keys.prefix}:{self.name}"


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

    def rate_limit(self, task: str) -> str:
        """GCRA state of a task's cluster-wide ``rate_limit``."""
        return f"{self.prefix}:rate:{task}"

    def side_effect(self, key: str) -> str:
        """An outside effect's at-most-once record (jobs/side_effects.py)."""
        return f"{self.prefix}:effect:{key}"

    def anaf_rate(self, host: str) -> str:
        """GCRA state of an ANAF host's limit (``api``: the OAuth host, ``public``)."""
        return f"{self.prefix}:anaf:rate:{host}"

    def anaf_quota(self, what: str, day: str, message_id: int) -> str:
        """Calls spent on one SPV message on one Romanian calendar day."""
        return f"{self.prefix}:anaf:quota:{what}:{day}:{message_id}"

    def anaf_taxpayer(self, day: str, cui: int) -> str:
        """A cached v9 taxpayer answer for one CUI on one date."""
        return f"{self.prefix}:anaf:taxpayer:{day}:{cui}"

    def anaf_oauth(self, client_id: str) -> str:
        """An ANAF OAuth client's tokens (``:refresh-lock`` beside it)."""
        return f"{self.prefix}:anaf:oauth:{client_id}"

    def artifact(self, artifact_id: str) -> str:
        """The base of an artifact's ``:data`` and ``:meta`` keys."""
        return f"{self.prefix}:art:{artifact_id}"

    def reges(self, *parts: object) -> str:
        """REGES's results, receipts, statuses and drain lock (reges/results.py)."""
        return ":".join([self.prefix, "reges", *map(str, parts)])

    def webhook(self, webhook_id: str, part: str = "") -> str:
        """A subscription's hash, or one of its parts (``deliveries``, ``dead``)."""
        return f"{self.prefix}:webhook:{webhook_id}" + (f":{part}" if part else "")

    # Fixed keys: ``keys.events`` is ``"<prefix>:events"``.
    schedules = FixedKey("schedules")  # zset: every schedule id (score 0: listed by id)
    schedules_due = FixedKey("schedules:due")  # zset: active schedule ids by next fire time
    audit = FixedKey("audit")  # capped stream of admin actions
    events = FixedKey("events")  # capped stream of CloudEvents
    webhooks = FixedKey("webhooks")  # zset: subscription ids by creation time
    webhook_due = FixedKey("webhook-due")  # zset: pending ``<webhook>|<event>`` by due time
    webhook_pending = FixedKey("webhook-pending")  # hash: pending delivery -> event, attempts
    done_channel = FixedKey("done")  # pub/sub: ids of jobs that just finished
    queues = FixedKey("queues")  # set: every queue a job was submitted to
