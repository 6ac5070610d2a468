"""The route policy: which scope a route needs, and whether calls to it are audited.

Decided by method + route template (``/v1/jobs/{job_id}:cancel``), never by the route
declaring it, so routes added anywhere fall under the table; a route no rule names needs
the strictest scope (``ops:admin``) rather than none.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers_core.security.scopes import Scope

READ_METHODS = frozenset({"GET", "HEAD"})
PUBLIC_PATHS = frozenset({
    "/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc",
    "/openapi.json",
    # The ops page and its assets hold no data; each API call the page makes needs its scope.
    "/ops", "/ops/static/ops.js", "/ops/static/ops.css", "/ops/static/favicon.svg",
})


@dataclass(frozen=True)
class Rule:
    prefix: str
    scope: Scope
    reads: bool | None = None  # True: GET/HEAD only; False: the other methods; None: any


# First match wins. A prefix matches the template itself, or it followed by "/" or ":".
RULES: tuple[Rule, ...] = (
    Rule("/v1/audit", Scope.OPS_ADMIN),
    Rule("/v1/webhooks", Scope.OPS_ADMIN),  # targets and signing secrets
    Rule("/ops", Scope.OPS_ADMIN),
    Rule("/v1/queues", Scope.OPS_ADMIN, reads=False),  # :drain, :resume, :scale (audited)
    Rule("/v1/dead-letters", Scope.OPS_ADMIN, reads=False),
    Rule("/v1/workers", Scope.WORKERS_ADMIN, reads=False),
    Rule("/v1/jobs", Scope.JOBS_WRITE, reads=False),
    Rule("/v1/artifacts", Scope.JOBS_WRITE, reads=False),
    Rule("/v1/schedules", Scope.JOBS_WRITE, reads=False),
    Rule("/v1", Scope.JOBS_READ, reads=True),
)
STRICTEST = Scope.OPS_ADMIN

# Mutating calls recorded in the audit log besides every admin-scoped one.
AUDITED_PREFIXES = ("/v1/schedules", "/v1/webhooks")
AUDITED_ACTIONS = (":cancel", ":retry")

# Routes that create jobs, counted against the caller's submission limit.
SUBMISSION_ROUTES = frozenset({
    ("POST", "/v1/jobs"), ("POST", "/v1/jobs:batch"), ("POST", "/v1/schedules"),
})
BATCH_ROUTES = frozenset({("POST", "/v1/jobs:batch")})


def _under(template: str, prefix: str) -> bool:
    return template == prefix or template.startswith((prefix + "/", prefix + ":"))


def required_scope(method: str, template: str) -> Scope | None:
    """The scope a call needs; None for public routes (health, metrics, docs)."""
    if template in PUBLIC_PATHS:
        return None
    is_read = method.upper() in READ_METHODS
    for rule in RULES:
        if _under(template, rule.prefix) and rule.reads in (None, is_read):
            return rule.scope
    return STRICTEST


def is_audited(method: str, template: str, scope: Scope) -> bool:
    """Mutating admin actions, job cancel/retry, schedule and webhook changes; ``scope`` is
    what ``required_scope`` gave for the call (looked up once per request)."""
    if method.upper() in READ_METHODS or method.upper() == "OPTIONS":
        return False
    return (
        scope in (Scope.OPS_ADMIN, Scope.WORKERS_ADMIN)
        or template.endswith(AUDITED_ACTIONS)
        or any(_under(template, p) for p in AUDITED_PREFIXES)
    )
