"""REGES-ONLINE's answers as typed errors, each also a ``Retry`` or a ``NonRetryable``.

    RegesError                       marker: everything REGES-related
    ├── RegesTemporaryError (Retry)  try again later (``after_s`` when REGES said)
    │   ├── RegesRateLimited         429
    │   └── RegesUnavailable         5xx (not after a submit: see below), connection failure
    └── (NonRetryable)
        ├── RegesRejected            400 (schema errors, ``details``), 404, other 4xx
        ├── RegesUnauthorized        401/403 from the API after a fresh token
        ├── RegesLoginRefused        Keycloak refused the password grant (``error``)
        └── RegesNotConfigured       no API key (username/password) or client secret set

A submit whose answer is lost (cut connection, 500/502/504 after the body was sent) is
``OutcomeUnknown``: REGES may have queued it, so it is looked up, never blindly resent.
Messages carry REGES's words, never a token, password or message body.
"""

from __future__ import annotations

from workers_core.errors import NonRetryable, Retry, WorkersError


class RegesError(WorkersError):
    problem_type = "reges-error"


class RegesTemporaryError(RegesError, Retry):
    problem_type = "reges-temporary"

    def __init__(self, message: str, after_s: float | None = None) -> None:
        Retry.__init__(self, message, after_s=after_s)


class RegesRateLimited(RegesTemporaryError):
    problem_type = "reges-rate-limited"


class RegesUnavailable(RegesTemporaryError):
    problem_type = "reges-unavailable"


class RegesRejected(RegesError, NonRetryable):
    """REGES understood the request and said no; ``details`` are its messages."""

    problem_type = "reges-rejected"

    def __init__(self, message: str, status: int | None = None,
                 details: list[str] | None = None) -> None:
        NonRetryable.__init__(self, message)
        self.status = status
        self.details = details or []


class RegesUnauthorized(RegesRejected):
    problem_type = "reges-unauthorized"


class RegesLoginRefused(RegesRejected):
    """``error`` is Keycloak's OAuth2 error code, e.g. ``invalid_grant`` (bad API key)."""

    problem_type = "reges-login-refused"

    def __init__(self, message: str, error: str, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.error = error


class RegesNotConfigured(RegesRejected):
    problem_type = "reges-not-configured"
