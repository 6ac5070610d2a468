"""ANAF's answers as typed errors, each also a ``Retry`` or a ``NonRetryable``.

    AnafError                      marker: everything ANAF-related (``eroare``: ANAF's text)
    ├── AnafTemporaryError (Retry) try again later (``after_s`` when ANAF said)
    │   ├── AnafRateLimited        429, or our own cluster quota would be exceeded
    │   ├── AnafUnavailable        5xx, connection failure, timeout, open circuit
    │   └── AnafWafRejected        HTML "Request Rejected" page on HTTP 200 (``support_id``)
    └── (NonRetryable)
        ├── AnafRejected           a business error: JSON ``eroare`` on 200, HTTP 400/404
        ├── AnafUnauthorized       401/403: token invalid or no rights for the CUI
        ├── AnafOAuthError         the token endpoint refused (``error``: invalid_grant …)
        └── AnafNotAuthorised      no tokens stored yet: run ``workers-core anaf login``

ANAF answers most business errors with HTTP 200 (notes/anaf.md §2.5, §2.6), so the status
alone never says success. The WAF page is retryable because on the public lookup it
signals a block or an outage (itrack/anaf#19), not a bad payload. Messages never carry
tokens: callers pass only ANAF's error words, never request bodies.
"""

from __future__ import annotations

from typing import ClassVar

from workers_core.errors import NonRetryable, Retry, WorkersError


class AnafError(WorkersError):
    """Root marker of ANAF failures; ``eroare`` is ANAF's own error text when it sent one."""

    problem_type: ClassVar[str] = "anaf-error"
    eroare: str | None = None


class AnafTemporaryError(AnafError, Retry):
    problem_type = "anaf-temporary"

    def __init__(
        self, message: str, after_s: float | None = None, eroare: str | None = None
    ) -> None:
        Retry.__init__(self, message, after_s=after_s)
        self.eroare = eroare


class AnafRateLimited(AnafTemporaryError):
    problem_type = "anaf-rate-limited"


class AnafUnavailable(AnafTemporaryError):
    problem_type = "anaf-unavailable"


class AnafWafRejected(AnafTemporaryError):
    problem_type = "anaf-waf-rejected"

    def __init__(
        self, message: str, support_id: str | None = None, after_s: float | None = 60.0
    ) -> None:
        super().__init__(message, after_s=after_s)
        self.support_id = support_id


class AnafRejected(AnafError, NonRetryable):
    """ANAF understood the request and said no; asking again gives the same answer."""

    problem_type = "anaf-rejected"

    def __init__(self, message: str, eroare: str | None = None, status: int | None = None) -> None:
        NonRetryable.__init__(self, message)
        self.eroare = eroare
        self.status = status


class AnafUnauthorized(AnafRejected):
    problem_type = "anaf-unauthorized"


class AnafOAuthError(AnafRejected):
    """``error`` is the OAuth2 error code (RFC 6749 §5.2), e.g. ``invalid_grant``."""

    problem_type = "anaf-oauth-error"

    def __init__(self, message: str, error: str, status: int | None = None) -> None:
        super().__init__(message, eroare=error, status=status)
        self.error = error


class AnafNotAuthorised(AnafRejected):
    problem_type = "anaf-not-authorised"
