"""One error hierarchy; every error knows its HTTP status, problem type and retryability.

    WorkersError
    ├── Retry                  raised by a task: try again after ``after_s``
    ├── NonRetryable           raised by a task: fail now, no retry
    ├── TimeLimitExceeded      the task ran past its time limit (retryable)
    ├── OutcomeUnknown         an outside call may or may not have acted (not retried)
    ├── ConfigError            settings that cannot work (e.g. SMTP/Slack in clear off loopback)
    ├── InvalidPayload         422: the payload does not match the task's model
    ├── UnknownTask            404: no such task type
    ├── JobNotFound            404
    ├── JobStateConflict       409: e.g. retry of a job that is not failed/dead
    ├── IdempotencyConflict    409: an Idempotency-Key reused with another request
    ├── PayloadTooLarge        413
    └── StoreUnavailable       503: Redis cannot be reached; nothing was stored
"""

from __future__ import annotations

from typing import Any, ClassVar


class WorkersError(Exception):
    """Root of every error the platform raises on purpose."""

    status_code: ClassVar[int] = 500
    problem_type: ClassVar[str] = "internal-error"
    retryable: ClassVar[bool] = True

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_problem(self) -> dict[str, Any]:
        """RFC 9457 problem details body."""
        return {
            "type": f"https://workers-core.dev/problems/{self.problem_type}",
            "title": self.problem_type.replace("-", " "),
            "status": self.status_code,
            "detail": self.message,
            **self.detail,
        }


class Retry(WorkersError):
    """Raised by a task to be tried again after ``after_s`` seconds (or the policy's backoff)."""

    problem_type = "retry"

    def __init__(self, message: str = "retry requested", after_s: float | None = None) -> None:
        super().__init__(message)
        self.after_s = after_s


class NonRetryable(WorkersError):
    """Raised by a task when trying again cannot help (bad input, a definitive rejection)."""

    problem_type = "non-retryable"
    retryable = False


class TimeLimitExceeded(WorkersError):
    problem_type = "time-limit-exceeded"


class OutcomeUnknown(WorkersError):
    """A side effect was requested and no answer came back: retrying could do it twice."""

    problem_type = "outcome-unknown"
    retryable = False


class ConfigError(WorkersError):
    """Settings that cannot work (a credential that would travel in clear, a bad URL): a
    person must change them, retrying cannot help."""

    problem_type = "config-error"
    retryable = False


class InvalidPayload(WorkersError):
    status_code = 422
    problem_type = "invalid-payload"
    retryable = False


class UnknownTask(WorkersError):
    status_code = 404
    problem_type = "unknown-task"
    retryable = False


class JobNotFound(WorkersError):
    status_code = 404
    problem_type = "job-not-found"
    retryable = False


class JobStateConflict(WorkersError):
    status_code = 409
    problem_type = "job-state-conflict"
    retryable = False


class IdempotencyConflict(WorkersError):
    status_code = 409
    problem_type = "idempotency-conflict"
    retryable = False


class PayloadTooLarge(WorkersError):
    status_code = 413
    problem_type = "payload-too-large"
    retryable = False


class StoreUnavailable(WorkersError):
    status_code = 503
    problem_type = "store-unavailable"
