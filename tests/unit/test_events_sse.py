"""The SSE reader below HTTP: positions, gaps in the capped stream, filters, stream slots."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workers_core.events.models import EventFilter
from workers_core.events.sse import EventReader, StreamSlots, TooManyStreams, event_messages
from workers_core.jobs.store import JobStore


def cloud_event(etype: str, job_id: str, task: str = "debug.echo") -> str:
    return json.dumps({"specversion": "1.0", "id": job_id + etype, "type": etype,
                       "data": {"job_id": job_id, "task": task, "queue": "debug",
                                "correlation_id": ""}})


async def emit(store: JobStore, etype: str, job_id: str, maxlen: int | None = None) -> str:
    entry: str = await store.redis.xadd(store.keys.events, {"event": cloud_event(etype, job_id)},
                                        maxlen=maxlen, approximate=False)
    return entry


def reader(store: JobStore) -> EventReader:
    return EventReader(store.redis, store.keys.events, block_ms=50)


async def test_without_a_position_only_new_events_are_read(store: JobStore) -> None:
    await emit(store, "job.queued", "old")
    cursor, gap = await reader(store).start(None)
    new = await emit(store, "job.queued", "new")
    assert gap is None
    assert [e for e, _ in await reader(store).read(cursor)] == [new]


async def test_resuming_after_an_id_reads_only_later_entries(store: JobStore) -> None:
    first = await emit(store, "job.queued", "j")
    second = await emit(store, "job.started", "j")
    cursor, gap = await reader(store).start(first)
    assert gap is None
    assert [e for e, _ in await reader(store).read(cursor)] == [second]


async def test_resuming_after_a_trimmed_id_reports_the_gap(store: JobStore) -> None:
    lost = await emit(store, "job.queued", "a")
    await emit(store, "job.started", "a")
    kept = await emit(store, "job.succeeded", "a", maxlen=1)  # trims the first two
    cursor, gap = await reader(store).start(lost)
    assert gap is not None
    assert gap.requested_after == lost and gap.first_available == kept
    assert [e for e, _ in await reader(store).read(cursor)] == [kept]


async def test_resuming_from_an_entry_still_held_is_no_gap(store: JobStore) -> None:
    await emit(store, "job.queued", "a")
    await emit(store, "job.started", "a")
    kept = await emit(store, "job.succeeded", "a", maxlen=2)
    later = await emit(store, "job.queued", "b")
    cursor, gap = await reader(store).start(kept)
    assert gap is None
    assert [e for e, _ in await reader(store).read(cursor)] == [later]


async def test_messages_carry_entry_id_type_and_the_event_and_skip_other_jobs(
        store: JobStore) -> None:
    released: list[bool] = []
    cursor, gap = await reader(store).start(None)
    mine = await emit(store, "job.queued", "mine")
    await emit(store, "job.queued", "other")
    messages = event_messages(reader(store), cursor, gap, EventFilter(job_id="mine"),
                              lambda: released.append(True))
    opening = await anext(messages)
    assert opening.comment is not None and opening.data is None
    message = await anext(messages)
    assert (message.id, message.event) == (mine, "job.queued")
    assert json.loads(str(message.data))["data"]["job_id"] == "mine"
    await messages.aclose()  # the client went away
    assert released == [True]


@pytest.mark.parametrize("event_filter, matches", [
    ({}, True),
    ({"types": ["job.queued", "job.started"]}, True),
    ({"types": ["job.succeeded"]}, False),
    ({"task": "debug.echo", "queue": "debug"}, True),
    ({"task": "debug.sleep"}, False),
    ({"correlation_id": "crm-1"}, False),
])
def test_filters_require_every_field_they_set(event_filter: dict[str, Any],
                                              matches: bool) -> None:
    event = json.loads(cloud_event("job.queued", "j"))
    assert EventFilter.model_validate(event_filter).matches(event) is matches


def test_stream_slots_cap_open_streams_and_free_them_once() -> None:
    slots = StreamSlots(2)
    first = slots.take()
    slots.take()
    with pytest.raises(TooManyStreams):
        slots.take()
    first()
    first()  # a second release (generator finally + background task) frees one slot only
    slots.take()
    with pytest.raises(TooManyStreams):
        slots.take()
