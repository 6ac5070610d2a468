"""One HTTP client per ANAF host: the failure modes ANAF documents, handled in one place.

- Long timeouts (60-80 s): an upload cut at 10 s was processed anyway and sent twice
  (odoo/odoo#198604).
- No keep-alive on the public lookup host: pooled connections are reset between paced calls
  (anafpy disables it there).
- HTTP 200 is not success: the WAF answers an HTML "Request Rejected" page with 200
  (itrack/anaf#19), and business errors come as 200 JSON ``{"eroare": ...}``.
- 429 and 5xx are retried with backoff, honouring ``Retry-After``; a failing host opens a
  circuit breaker; cluster-wide quotas (the 1 req/s lookup) are taken from Redis before each
  call, so every replica shares them.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from workers_core.breaker import CircuitBreaker, CircuitOpen
from workers_core.errors import OutcomeUnknown
from workers_core.httputil import NOT_SENT, retry_after_s
from workers_core.integrations.anaf.errors import (
    AnafRateLimited,
    AnafRejected,
    AnafTemporaryError,
    AnafUnauthorized,
    AnafUnavailable,
    AnafWafRejected,
)
from workers_core.jobs.retry import RetryPolicy
from workers_core.observability import metrics
from workers_core.ratelimit import Rate, RedisRateLimiter

# doc_WS_V9.txt: "maxim 1 request pe secunda"; 5 % margin so network jitter never makes two
# calls arrive closer than a second at ANAF.
PUBLIC_LOOKUP_RATE = Rate(1, 1.05)
ROMANIA = ZoneInfo("Europe/Bucharest")
# Within one job attempt: a few quick tries (1, 2, 4 s), then the job's own retry takes over.
DEFAULT_RETRY = RetryPolicy(max_attempts=4, backoff_base_s=1.0, backoff_max_s=30.0, jitter=False)

_SUPPORT_ID = re.compile(rb"support ID is:?\s*(?:<[^>]*>\s*)*([0-9A-Za-z-]+)", re.IGNORECASE)
_MAX_TEXT = 300


def is_waf_page(response: httpx.Response) -> bool:
    """ANAF's WAF (F5) answers an HTML page titled "Request Rejected", often with HTTP 200."""
    head = response.content[:4096].lower()
    return b"request rejected" in head and (
        "html" in response.headers.get("content-type", "") or head.lstrip().startswith(b"<")
    )


def eroare_of(response: httpx.Response) -> str | None:
    """ANAF's error text from a JSON body (``eroare``, else Spring's ``message``/``error``)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    for key in ("eroare", "message", "error"):
        if isinstance(body.get(key), str) and body[key]:
            return str(body[key])[:_MAX_TEXT]
    return None


def seconds_to_romanian_midnight(now: datetime | None = None) -> float:
    """Daily quotas ("… in cursul zilei") reset at midnight, ANAF's clock (Romania)."""
    now = now or datetime.now(ROMANIA)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
    return (midnight - now).total_seconds()


class AnafHttp:
    """``await http.request("POST", path, json=...)``: a checked response or a typed error.

    ``idempotent=False`` (uploads) never retries a request that may have reached ANAF: a
    lost answer raises ``OutcomeUnknown``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        keepalive: bool = True,
        limiters: Sequence[RedisRateLimiter] = (),
        breaker: CircuitBreaker | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        max_retry_after_s: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.limiters = list(limiters)
        self.breaker = breaker or CircuitBreaker(failure_threshold=5, reset_after_s=60.0)
        self.retry = retry
        self.max_retry_after_s = max_retry_after_s
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_keepalive_connections=None if keepalive else 0),
            headers={"User-Agent": "workers-core", "Accept": "application/json, */*"},
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> AnafHttp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        accept: Collection[int] = (),
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; statuses in ``accept`` are returned for the caller to read."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(method, path, idempotent, accept, kwargs)
            except AnafTemporaryError as exc:
                # A WAF block is not lifted by hammering; a non-idempotent call is not resent.
                if (
                    isinstance(exc, AnafWafRejected)
                    or attempt >= self.retry.max_attempts
                    or not idempotent
                ):
                    raise
                delay = exc.after_s if exc.after_s is not None else self.retry.delay_s(attempt)
                if delay > self.max_retry_after_s:
                    raise
                await asyncio.sleep(delay)

    async def _once(
        self,
        method: str,
        path: str,
        idempotent: bool,
        accept: Collection[int],
        kwargs: dict[str, Any],
    ) -> httpx.Response:
        try:
            self.breaker.before_call()
        except CircuitOpen as exc:
            raise AnafUnavailable(f"{self.base_url}: {exc}", after_s=exc.retry_in_s) from exc
        for limiter in self.limiters:
            await limiter.acquire()
        # Timed after the rate limiters: the latency is ANAF's, not our own pacing.
        with metrics.external_call("anaf", metrics.operation_of(method, path)):
            try:
                response = await self.client.request(method, path, **kwargs)
            except NOT_SENT as exc:
                await self._answered()
                self.breaker.record_failure()
                raise AnafUnavailable(
                    f"cannot reach {self.base_url}: {type(exc).__name__}") from exc
            except httpx.TransportError as exc:
                await self._answered()
                self.breaker.record_failure()
                what = f"no answer from {self.base_url}{path}: {type(exc).__name__}"
                if not idempotent:
                    raise OutcomeUnknown(what + "; ANAF may have acted") from exc
                raise AnafUnavailable(what) from exc
            await self._answered()
            return self._check(response, path, accept)

    async def _answered(self) -> None:
        for limiter in self.limiters:
            await limiter.after_call()

    def _check(
        self, response: httpx.Response, path: str, accept: Collection[int]
    ) -> httpx.Response:
        status = response.status_code
        where = f"ANAF {path}"
        if is_waf_page(response):
            self.breaker.record_failure()
            match = _SUPPORT_ID.search(response.content)
            support_id = match.group(1).decode() if match else None
            raise AnafWafRejected(
                f"{where}: rejected by ANAF's firewall (support ID {support_id or 'unknown'})",
                support_id=support_id,
            )
        if status >= 500:
            self.breaker.record_failure()
            raise AnafUnavailable(
                f"{where}: HTTP {status}",
                after_s=retry_after_s(response.headers),
                eroare=eroare_of(response),
            )
        self.breaker.record_success()
        if status in accept:
            return response
        if status == 429:
            raise AnafRateLimited(
                f"{where}: rate limited (HTTP 429)", after_s=retry_after_s(response.headers)
            )
        eroare = eroare_of(response)
        if status in (401, 403):
            raise AnafUnauthorized(
                f"{where}: HTTP {status}: {eroare or 'not allowed'}", eroare=eroare, status=status
            )
        if status >= 400:
            raise AnafRejected(
                f"{where}: HTTP {status}: {eroare or response.reason_phrase}",
                eroare=eroare,
                status=status,
            )
        if eroare is not None and "eroare" in _json_keys(response):
            if "in cursul zilei" in eroare:  # a daily quota: "S-au facut deja 10 descarcari…"
                raise AnafRateLimited(
                    f"{where}: {eroare}", after_s=seconds_to_romanian_midnight(), eroare=eroare
                )
            raise AnafRejected(f"{where}: {eroare}", eroare=eroare, status=status)
        return response


def _json_keys(response: httpx.Response) -> Collection[str]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ()
    return body.keys() if isinstance(body, dict) else ()
