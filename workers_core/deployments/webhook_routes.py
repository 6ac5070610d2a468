"""``/v1/webhooks``: register receivers of lifecycle events, see their deliveries, redeliver.

The destination is checked at registration (allowlist, https, no loopback/private ranges
unless allowed) and again before every delivery by the dispatcher.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, Query, Response

from workers_core.errors import InvalidPayload
from workers_core.events.destinations import DestinationPolicy
from workers_core.events.models import (
    DeadLetter,
    DeliveryAttempt,
    Redelivered,
    Webhook,
    WebhookCreated,
    WebhookSpec,
)
from workers_core.events.signature import new_secret
from workers_core.events.webhook_store import WebhookStore
from workers_core.integrations.netguard import BlockedUrl, FetchFailed
from workers_core.jobs.store import redis_errors_as_503

if TYPE_CHECKING:
    from workers_core.deployments.api import GatewayState

Limit = Annotated[int, Query(ge=1, le=1000)]


async def _check_url(policy: DestinationPolicy, url: str) -> None:
    try:
        await policy.check(url)
    except (BlockedUrl, FetchFailed) as exc:
        raise InvalidPayload(f"url: {exc.message}", errors=[
            {"field": "url", "message": exc.message, "type": exc.problem_type}]) from None


def install_webhook_routes(app: FastAPI, state: GatewayState) -> None:
    settings = state.settings
    policy = DestinationPolicy.from_settings(settings)
    store = WebhookStore(state.store.redis, state.store.keys,
                         log_size=settings.webhook_delivery_log_size,
                         dead_letter_max=settings.webhook_dead_letter_max)

    @app.post("/v1/webhooks", status_code=201, tags=["webhooks"],
              responses={422: {"description": "invalid spec or destination not allowed"}})
    async def create_webhook(spec: WebhookSpec, response: Response) -> WebhookCreated:
        """Subscribe a URL to lifecycle events; the secret is shown in this answer only."""
        await _check_url(policy, spec.url)
        secret = spec.secret.get_secret_value() if spec.secret else new_secret()
        async with redis_errors_as_503():
            created = await store.create(spec.url, spec.filter, spec.description, secret)
        response.headers["Location"] = f"/v1/webhooks/{created.id}"
        return created

    @app.get("/v1/webhooks", tags=["webhooks"])
    async def list_webhooks() -> list[Webhook]:
        """Every subscription, oldest first (secrets never shown)."""
        async with redis_errors_as_503():
            return await store.list_all()

    @app.get("/v1/webhooks/{webhook_id}", tags=["webhooks"])
    async def get_webhook(webhook_id: str) -> Webhook:
        """One subscription: URL, filter, status (`disabled` after a 410 Gone)."""
        async with redis_errors_as_503():
            return await store.get(webhook_id)

    @app.delete("/v1/webhooks/{webhook_id}", status_code=204, tags=["webhooks"])
    async def delete_webhook(webhook_id: str) -> Response:
        """Unsubscribe; deliveries still owed to it are dropped."""
        async with redis_errors_as_503():
            await store.delete(webhook_id)
        return Response(status_code=204)

    @app.get("/v1/webhooks/{webhook_id}/deliveries", tags=["webhooks"])
    async def list_deliveries(webhook_id: str, limit: Limit = 50) -> list[DeliveryAttempt]:
        """Recent attempts, newest first: status code or error, outcome, next attempt."""
        async with redis_errors_as_503():
            return await store.deliveries(webhook_id, limit)

    @app.get("/v1/webhooks/{webhook_id}/dead-letters", tags=["webhooks"])
    async def list_dead_letters(webhook_id: str, limit: Limit = 50) -> list[DeadLetter]:
        """Events given up on, newest first, each with its last error."""
        async with redis_errors_as_503():
            return await store.dead_letters(webhook_id, limit)

    @app.post("/v1/webhooks/{webhook_id}/dead-letters:redeliver", status_code=202,
              tags=["webhooks"], responses={409: {"description": "the webhook is disabled"}})
    async def redeliver(webhook_id: str) -> Redelivered:
        """Owe every dead letter again now, with a fresh attempt budget."""
        async with redis_errors_as_503():
            return Redelivered(redelivered=await store.redeliver(webhook_id))
