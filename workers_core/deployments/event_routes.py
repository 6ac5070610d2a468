"""``GET /v1/events``: lifecycle CloudEvents as Server-Sent Events, filtered and resumable.

sse-starlette frames the messages, sends keep-alive comments and ends the stream when the
client disconnects (through Serve, the proxy cancels the request: the generator's
``finally`` still runs). Starlette's StreamingResponse would leave all three to us.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, Header, Query
from pydantic import ValidationError
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from workers_core.deployments import problems
from workers_core.errors import InvalidPayload
from workers_core.events.models import EventFilter
from workers_core.events.sse import STREAM_ID_PATTERN, EventReader, StreamSlots, event_messages
from workers_core.jobs.store import redis_errors_as_503

if TYPE_CHECKING:
    from workers_core.deployments.api import GatewayState

SEND_TIMEOUT_S = 30.0  # a client that stops reading for this long is dropped


def _filter(**fields: object) -> EventFilter:
    try:
        return EventFilter.model_validate(fields)
    except ValidationError as exc:
        errors = problems.field_errors(exc.errors())
        raise InvalidPayload("invalid event filter: " + ", ".join(e["field"] for e in errors),
                             errors=errors) from None


def install_event_routes(app: FastAPI, state: GatewayState) -> None:
    settings = state.settings
    slots = StreamSlots(settings.events_sse_max_streams)
    # A blocked read must end before the Redis socket timeout would cut it.
    block_ms = max(min(settings.events_sse_block_ms,
                       int(settings.redis_socket_timeout_s * 1000) - 500), 1)
    reader = EventReader(state.store.redis, state.store.keys.events, block_ms)

    @app.get("/v1/events", tags=["events"], response_class=EventSourceResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "id: stream entry id, event: CloudEvent type, "
                                             "data: the CloudEvent JSON"},
                        503: {"description": "too many open streams on this gateway"}})
    async def stream_events(
        task: Annotated[str | None, Query(max_length=200)] = None,
        queue: Annotated[str | None, Query(max_length=200)] = None,
        correlation_id: Annotated[str | None, Query(max_length=255)] = None,
        job_id: Annotated[str | None, Query(max_length=64)] = None,
        types: Annotated[list[str] | None, Query(alias="type", max_length=50,
                                                 description="Repeat for several.")] = None,
        after: Annotated[str | None, Query(pattern=STREAM_ID_PATTERN,
                                           description="Resume after this id.")] = None,
        last_event_id: Annotated[str | None, Header(pattern=STREAM_ID_PATTERN)] = None,
    ) -> EventSourceResponse:
        """Lifecycle events from now on (or after `Last-Event-ID` / `after`), as SSE; an
        `event: gap` first when events after that id were already trimmed."""
        event_filter = _filter(types=types or [], task=task, queue=queue,
                               correlation_id=correlation_id, job_id=job_id)
        async with redis_errors_as_503():
            cursor, gap = await reader.start(last_event_id or after)
        release = slots.take()
        messages = event_messages(reader, cursor, gap, event_filter, release)
        # HEAD never starts the generator: the background task frees the slot then.
        return EventSourceResponse(messages, ping=settings.events_sse_ping_s,
                                   send_timeout=SEND_TIMEOUT_S,
                                   background=BackgroundTask(release))
