"""What the SDK raises: one class per way a call can go wrong, built from the API's problems.

    ClientError
    ├── APIError                 the platform answered with an RFC 9457 problem
    │   ├── InvalidRequest       422 (``errors`` names each bad field)
    │   ├── NotFound             404 (unknown job, task or artifact)
    │   ├── Conflict             409 (job state, reused Idempotency-Key)
    │   ├── PayloadTooLarge      413
    │   ├── Overloaded           429 (retried by the client before it reaches you)
    │   ├── Unavailable          503 (retried by the client before it reaches you)
    │   └── ServerError          other 5xx
    ├── TransportError           no HTTP answer (connection refused, reset, timeout)
    ├── CircuitOpen              recent calls failed; this one was not sent
    ├── WaitTimeout              the job was not finished in time (``job`` is its last state)
    └── JobFailed                ``run()``: the job ended failed, dead or cancelled
"""

from __future__ import annotations

from typing import Any

from workers_core import breaker
from workers_core.jobs.models import Job


class ClientError(Exception):
    """Root of everything the SDK raises."""


class APIError(ClientError):
    """The platform answered with a problem (``status``, ``problem_type``, ``detail``)."""

    def __init__(self, status: int, problem: dict[str, Any], retry_after_s: float | None = None
                 ) -> None:
        self.status = status
        self.problem = problem
        self.problem_type = str(problem.get("type", "")).rsplit("/", 1)[-1] or "unknown"
        self.detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        self.retry_after_s = retry_after_s
        super().__init__(f"{status} {self.problem_type}: {self.detail}")


class InvalidRequest(APIError):
    """422: the request or the job's payload does not fit; ``errors`` name the fields."""


class NotFound(APIError):
    pass


class Conflict(APIError):
    pass


class PayloadTooLarge(APIError):
    pass


class Overloaded(APIError):
    """429: the gateway shed load; nothing was stored."""


class Unavailable(APIError):
    """503: Redis or the gateway is unavailable; nothing was stored."""


class ServerError(APIError):
    pass


class TransportError(ClientError):
    """No HTTP answer came back. ``sent`` is False when the request surely never left."""

    def __init__(self, message: str, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class CircuitOpen(ClientError, breaker.CircuitOpen):
    """Recent calls kept failing; calls are refused until ``retry_in_s`` has passed."""


class WaitTimeout(ClientError):
    def __init__(self, job: Job, timeout_s: float) -> None:
        super().__init__(f"job {job.id} still {job.status.value} after {timeout_s:g}s")
        self.job = job


class JobFailed(ClientError):
    def __init__(self, job: Job) -> None:
        reason = job.error.message if job.error else job.status.value
        super().__init__(f"job {job.id} ({job.task}) {job.status.value}: {reason}")
        self.job = job


_BY_STATUS: dict[int, type[APIError]] = {
    404: NotFound, 409: Conflict, 413: PayloadTooLarge, 422: InvalidRequest, 429: Overloaded,
    503: Unavailable,
}


def api_error(status: int, problem: dict[str, Any], retry_after_s: float | None) -> APIError:
    """The typed error for an HTTP error answer."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    return cls(status, problem, retry_after_s)
