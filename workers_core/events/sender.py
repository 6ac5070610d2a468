"""One webhook POST: destination re-checked, connection pinned, redirects not followed."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from workers_core.events.destinations import DestinationPolicy
from workers_core.httputil import retry_after_s
from workers_core.integrations.netguard import BlockedUrl, FetchFailed, pinned_client

USER_AGENT = "workers-core-webhooks/1"


@dataclass(frozen=True)
class SendResult:
    """What came back: a status, or why nothing did. ``blocked``: never retry."""

    status_code: int | None
    error: str | None
    duration_ms: float
    retry_after_s: float | None = None
    blocked: bool = False

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


class WebhookSender:
    """POSTs through a ``DestinationPolicy``; the body is never followed to another URL."""

    def __init__(self, policy: DestinationPolicy, timeout_s: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.policy = policy
        self.timeout_s = timeout_s
        self._client = pinned_client(timeout_s, transport)

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> SendResult:
        started = time.monotonic()

        def took() -> float:
            return round((time.monotonic() - started) * 1000, 1)

        try:
            target = await self.policy.check(url)
        except BlockedUrl as exc:
            return SendResult(None, f"blocked: {exc.message}", took(), blocked=True)
        except FetchFailed as exc:
            return SendResult(None, exc.message, took())
        request = target.request(self._client, "POST", {**headers, "user-agent": USER_AGENT},
                                 content=body)
        try:
            response = await self._client.send(request)
        except httpx.HTTPError as exc:
            return SendResult(None, f"{type(exc).__name__}: {exc}"[:500], took())
        error = None if response.is_success else f"HTTP {response.status_code}"
        if 300 <= response.status_code < 400:
            error = f"HTTP {response.status_code}: redirects are not followed"
        return SendResult(response.status_code, error, took(),
                          retry_after_s(response.headers))

    async def aclose(self) -> None:
        await self._client.aclose()
