"""Lifecycle events as Server-Sent Events: read ``{p}:events`` from a position, filtered.

Each message: ``id:`` the Redis stream entry id (what ``Last-Event-ID`` resumes after),
``event:`` the CloudEvent type, ``data:`` the CloudEvent JSON. The stream is capped
(``WORKERS_EVENTS_MAXLEN``), so resuming from before the oldest entry left, once trimming has
begun, first sends an ``event: gap`` (conservative: Redis does not say which ids trimming
removed), then goes on from the oldest entry still there.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel
from redis import exceptions as redis_errors
from sse_starlette import ServerSentEvent

from workers_core.errors import WorkersError
from workers_core.events.models import EventFilter
from workers_core.jobs.store import UNAVAILABLE

STREAM_ID_PATTERN: Final = r"^\d{1,20}(-\d{1,20})?$"
READ_COUNT: Final = 200


class TooManyStreams(WorkersError):
    status_code = 503
    problem_type = "too-many-event-streams"


class Gap(BaseModel):
    """Events after ``requested_after`` may have been trimmed before this reader saw them."""

    requested_after: str
    first_available: str | None
    detail: str = "events were trimmed from the capped stream (WORKERS_EVENTS_MAXLEN)"


def _parse_id(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


class StreamSlots:
    """A per-replica cap on open streams: each one holds a slot until it ends."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def take(self) -> Callable[[], None]:
        """A slot, or ``TooManyStreams``; the returned release may be called more than once."""
        if self.open >= self.limit:
            raise TooManyStreams(f"this gateway already serves {self.limit} event streams"
                                 " (WORKERS_EVENTS_SSE_MAX_STREAMS)")
        self.open += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open -= 1

        return release


@dataclass(frozen=True)
class EventReader:
    """XREAD over the events stream; one per open SSE stream."""

    redis: Any
    stream: str
    block_ms: int

    async def start(self, after: str | None) -> tuple[str, Gap | None]:
        """Where to read from: after ``after``, or from now on; and whether events are lost."""
        try:
            info = await self.redis.xinfo_stream(self.stream)
        except redis_errors.ResponseError:  # no stream yet: nothing was ever emitted
            return after or "0-0", None
        if after is None:
            return str(info["last-generated-id"]), None
        first = info.get("first-entry")
        first_id = str(first[0]) if first else None
        # XDEL raises max-deleted-entry-id; trimming does not, but shows as entries-added
        # above length, and then anything before the first entry may be gone.
        deleted = str(info.get("max-deleted-entry-id") or "0-0")
        trimmed = int(info.get("entries-added", 0)) > int(info.get("length", 0))
        before_first = first_id is not None and _parse_id(after) < _parse_id(first_id)
        lost = _parse_id(after) < _parse_id(deleted) or (trimmed and before_first)
        return after, Gap(requested_after=after, first_available=first_id) if lost else None

    async def read(self, cursor: str) -> list[tuple[str, str]]:
        """The next entries after ``cursor`` as (entry id, CloudEvent JSON); [] after a block."""
        reply = await self.redis.xread({self.stream: cursor}, count=READ_COUNT,
                                       block=self.block_ms)
        return [(entry_id, fields.get("event", "{}"))
                for _, entries in reply or [] for entry_id, fields in entries]


async def event_messages(reader: EventReader, cursor: str, gap: Gap | None,
                         event_filter: EventFilter,
                         release: Callable[[], None]) -> AsyncIterator[ServerSentEvent]:
    """The SSE messages of one stream, until the client goes away or Redis does."""
    try:
        yield ServerSentEvent(comment=f"reading after {cursor}")
        if gap is not None:
            yield ServerSentEvent(event="gap", data=gap.model_dump_json())
        while True:
            for entry_id, raw in await reader.read(cursor):
                cursor = entry_id
                event = json.loads(raw)
                if event_filter.matches(event):
                    yield ServerSentEvent(data=raw, event=str(event.get("type", "")),
                                          id=entry_id)
    except UNAVAILABLE:
        # The client reconnects with Last-Event-ID and loses nothing the stream still holds.
        yield ServerSentEvent(event="error", data=json.dumps({"detail": "Redis unreachable"}))
    finally:
        release()
