"""The audit log of admin actions: who did what to which target, when, and how it ended.

Kept in a capped Redis stream (``{prefix}:audit``, newest last) and written as a log line.
Only the route, its path parameters and the outcome are recorded, never request bodies.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

import redis.asyncio as aioredis
import structlog
from pydantic import BaseModel, Field

from workers_core.clock import Clock, SystemClock
from workers_core.jobs.keys import RedisKeys

log = structlog.get_logger("workers_core.audit")

SCAN_CHUNK = 200
SCAN_CAP = 10_000  # entries one page request looks at before handing back a cursor
_ID_PART_MAX = 2**64 - 1  # both halves of a stream id are unsigned 64-bit


def _older_than(cursor: str | None) -> str | None:
    """XREVRANGE's upper bound for records older than ``cursor`` (``\\d+-\\d+``); None when
    none can be. Redis refuses ``(0-0`` and halves past 64 bits instead of answering empty."""
    if not cursor:
        return "+"
    ms, seq = (int(part) for part in cursor.split("-", 1))
    if ms > _ID_PART_MAX or seq > _ID_PART_MAX:
        return "+"
    return f"({ms}-{seq}" if ms or seq else None


class AuditEntry(BaseModel):
    """One admin action as the gateway saw it."""

    at: datetime
    actor: str = Field(description="The token's sub; `anonymous` when auth is disabled.")
    action: str = Field(description="Method and route, e.g. `POST /v1/jobs/{job_id}:cancel`.")
    target: str | None = Field(default=None, description="The first path parameter's value.")
    params: dict[str, str] = Field(default_factory=dict, description="Path parameters.")
    status: int = Field(description="The HTTP status answered.")
    result: Literal["ok", "denied", "error"]
    client: str | None = Field(default=None, description="The caller's address.")


class AuditRecord(AuditEntry):
    id: str = Field(description="Stream id; pass it back as `cursor` for older records.")


class AuditPage(BaseModel):
    items: list[AuditRecord]
    next_cursor: str | None = None


def result_of(status: int) -> Literal["ok", "denied", "error"]:
    if status in (401, 403):
        return "denied"
    return "ok" if status < 400 else "error"


class AuditLog:
    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, maxlen: int,
                 clock: Clock | None = None) -> None:
        self._redis = redis
        self._key = keys.audit
        self._maxlen = maxlen
        self._clock = clock or SystemClock()

    async def record(self, actor: str, action: str, params: dict[str, str], status: int,
                     client: str | None) -> str:
        """Append one record (stream and log line); returns its id."""
        entry = AuditEntry(
            at=datetime.fromtimestamp(self._clock.now(), UTC), actor=actor, action=action,
            target=next(iter(params.values()), None), params=params, status=status,
            result=result_of(status), client=client,
        )
        log.info("audit", **entry.model_dump(mode="json"))
        record_id: Any = await self._redis.xadd(
            self._key, {"entry": entry.model_dump_json()}, maxlen=self._maxlen,
            approximate=True,
        )
        return str(record_id)

    async def page(self, *, actor: str | None = None, action: str | None = None,
                   since: datetime | None = None, cursor: str | None = None,
                   limit: int = 50) -> AuditPage:
        """Newest first. ``action`` matches as a substring of "METHOD /route/template";
        ``next_cursor`` is set while older records may remain."""
        upper = _older_than(cursor)
        if upper is None:
            return AuditPage(items=[])
        lower = f"{max(0, int(since.timestamp() * 1000))}-0" if since else "-"
        items: list[AuditRecord] = []
        scanned, last_id = 0, cursor
        while scanned < SCAN_CAP:
            batch: Any = await self._redis.xrevrange(self._key, upper, lower, count=SCAN_CHUNK)
            for record_id, fields in batch:
                last_id = record_id
                record = AuditRecord.model_validate({**json.loads(fields["entry"]),
                                                     "id": record_id})
                if (actor is None or record.actor == actor) and (
                        action is None or action in record.action):
                    items.append(record)
                    if len(items) == limit:
                        return AuditPage(items=items, next_cursor=record_id)
            scanned += len(batch)
            if len(batch) < SCAN_CHUNK:
                return AuditPage(items=items)
            upper = f"({last_id}"
        return AuditPage(items=items, next_cursor=last_id)
