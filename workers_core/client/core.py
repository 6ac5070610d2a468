"""What the sync and async clients share: request building, retry decisions, answer parsing.

Only the I/O (httpx.Client vs httpx.AsyncClient, time.sleep vs asyncio.sleep) differs between
the two clients, so everything that can be decided without I/O is decided here, once.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from workers_core import breaker
from workers_core.breaker import CircuitBreaker
from workers_core.client.errors import (
    APIError,
    CircuitOpen,
    ClientError,
    TransportError,
    api_error,
)
from workers_core.httputil import NOT_SENT, retry_after_s
from workers_core.jobs.models import FollowUp, JobSubmission
from workers_core.jobs.retry import RetryPolicy

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True)
class RetryConfig:
    """Client-side retries. 429 and 503 mean nothing was stored, so they are always retried;
    other failures only when repeating the request cannot act twice."""

    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 10.0
    max_retry_after_s: float = 60.0

    @functools.cached_property
    def _policy(self) -> RetryPolicy:
        return RetryPolicy(backoff_base_s=self.backoff_base_s, backoff_max_s=self.backoff_max_s)

    def delay(self, retry: int, retry_after: float | None) -> float:
        """The jobs' own backoff (exponential, equal jitter); a server's Retry-After wins
        when longer."""
        backoff = self._policy.delay_s(retry + 1)
        if retry_after is not None:
            return max(backoff, min(retry_after, self.max_retry_after_s))
        return backoff


@dataclass
class Call:
    """One logical API call, possibly sent several times."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    replay_safe: bool = False  # an Idempotency-Key makes a POST safe to repeat

    @property
    def idempotent(self) -> bool:
        return self.replay_safe or self.method in IDEMPOTENT_METHODS


@dataclass
class ClientCore:
    base_url: str
    token: str | None = None
    timeout_s: float = 30.0
    retry: RetryConfig = field(default_factory=RetryConfig)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    batch_size: int = 1000
    user_agent: str = "workers-core-sdk"

    def client_kwargs(self) -> dict[str, Any]:
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return {"base_url": self.base_url.rstrip("/"), "headers": headers,
                "timeout": httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 5.0))}

    def request_kwargs(self, call: Call) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"headers": call.headers}
        if call.json is not None:
            kwargs["json"] = call.json
        if call.content is not None:
            kwargs["content"] = call.content
        if call.params:
            kwargs["params"] = {k: v for k, v in call.params.items() if v is not None}
        if call.timeout_s is not None:
            kwargs["timeout"] = httpx.Timeout(call.timeout_s, connect=5.0)
        return kwargs

    def before_call(self) -> None:
        """The breaker's check, its refusal raised as the SDK's ``CircuitOpen``."""
        try:
            self.breaker.before_call()
        except breaker.CircuitOpen as exc:
            raise CircuitOpen(exc.retry_in_s) from None

    def outcome(self, call: Call, response: httpx.Response) -> APIError | None:
        """Record the answer with the breaker; the error it stands for, if any."""
        if response.status_code >= 500:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        if response.status_code < 400:
            return None
        try:
            body = response.json()
            problem = body if isinstance(body, dict) else {"detail": str(body)}
        except ValueError:
            problem = {"detail": response.text[:500] or response.reason_phrase}
        return api_error(response.status_code, problem, retry_after_s(response.headers))

    def transport_error(self, exc: httpx.TransportError) -> TransportError:
        self.breaker.record_failure()
        sent = not isinstance(exc, NOT_SENT)
        return TransportError(f"{type(exc).__name__}: {exc or 'no answer'}", sent=sent)

    def retry_delay(self, call: Call, error: ClientError, retries_done: int) -> float | None:
        """Seconds to wait before sending ``call`` again, or None to give up with ``error``."""
        if retries_done >= self.retry.max_retries:
            return None
        if isinstance(error, APIError):
            if error.status in (429, 503):
                return self.retry.delay(retries_done, error.retry_after_s)
            if error.status in (502, 504) and call.idempotent:
                return self.retry.delay(retries_done, error.retry_after_s)
            return None
        if isinstance(error, TransportError) and (call.idempotent or not error.sent):
            return self.retry.delay(retries_done, None)
        return None

    # -- calls ------------------------------------------------------------------------------

    def submit_call(
        self,
        task: str,
        payload: Mapping[str, Any] | None,
        *,
        not_before: datetime | float | None,
        max_attempts: int | None,
        correlation_id: str | None,
        idempotency_key: str | None,
        then: Sequence[FollowUp | Mapping[str, Any]] = (),
    ) -> Call:
        body = submission(task, payload, not_before=not_before, max_attempts=max_attempts,
                          correlation_id=correlation_id, then=then)
        # A key of our own makes the POST safe to resend after a lost answer.
        key = idempotency_key or f"sdk-{uuid.uuid4()}"
        return Call("POST", "/v1/jobs", json=body, headers={"Idempotency-Key": key},
                    replay_safe=True)

    def batch_calls(self, jobs: Iterable[JobSubmission | Mapping[str, Any]]) -> list[Call]:
        """One call per ``batch_size`` jobs; every job gets an idempotency key if it has none,
        so a resent batch returns the same jobs instead of creating new ones."""
        items: list[dict[str, Any]] = []
        for job in jobs:
            sub = job if isinstance(job, JobSubmission) else JobSubmission.model_validate(job)
            body = sub.model_dump(mode="json", exclude_none=True)
            if not body.get("then"):
                body.pop("then", None)
            body.setdefault("idempotency_key", f"sdk-{uuid.uuid4()}")
            items.append(body)
        return [Call("POST", "/v1/jobs:batch", json={"jobs": items[i:i + self.batch_size]},
                     replay_safe=True)
                for i in range(0, len(items), self.batch_size)]

    def wait_call(self, job_id: str, wait_s: float) -> Call:
        return Call("GET", f"/v1/jobs/{job_id}", params={"wait": round(wait_s, 3)},
                    timeout_s=wait_s + self.timeout_s)


def submission(
    task: str,
    payload: Mapping[str, Any] | None,
    *,
    not_before: datetime | float | None = None,
    max_attempts: int | None = None,
    correlation_id: str | None = None,
    then: Sequence[FollowUp | Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The JSON body of one job (validated locally: a typo fails before any request)."""
    sub = JobSubmission.model_validate({
        "task": task, "payload": dict(payload or {}), "not_before": not_before,
        "max_attempts": max_attempts, "correlation_id": correlation_id,
        "then": [f.model_dump() if isinstance(f, FollowUp) else dict(f) for f in then]})
    return sub.model_dump(mode="json", exclude_none=True,
                          exclude=None if sub.then else {"then"})
