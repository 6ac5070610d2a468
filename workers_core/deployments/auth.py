"""Auth at the gateway: every request's route is looked up in the policy table
(``security/policy.py``), its bearer token checked for the scope it needs, admin actions
audited after the response, and job submissions counted against the caller's limit.

An ASGI middleware rather than per-route dependencies: it sees every route however it was
added (mounts included) and the final status code, which the audit log records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers_core.config import Settings
from workers_core.deployments import problems
from workers_core.errors import ConfigError
from workers_core.integrations.netguard import is_loopback_host
from workers_core.jobs.keys import RedisKeys
from workers_core.security import policy
from workers_core.security.audit import AuditLog
from workers_core.security.scopes import ANONYMOUS, Principal
from workers_core.security.scopes import Scope as AuthScope
from workers_core.security.submit_quota import SubmissionQuota, SubmissionRateExceeded
from workers_core.security.tokens import InvalidToken, TokenVerifier, configured_key_sources

log = structlog.get_logger("workers_core.auth")

REALM = "workers-core"
BEARER_SCHEME = "bearerAuth"


class BearerAuth:
    """The ``Authorization`` header -> a ``Principal``; with no verifier (auth disabled),
    everyone is ``anonymous`` with every scope."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        self.verifier = verifier

    def __call__(self, authorization: str | None) -> Principal:
        if self.verifier is None:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("a bearer token is required", missing=True)
        return self.verifier.verify(token.strip())


def bearer_auth_from_settings(settings: Settings) -> BearerAuth:
    """Auth as configured; disabled auth only on a loopback bind (ConfigError otherwise)."""
    mode = settings.auth_mode
    if mode == "auto":
        mode = "jwt" if configured_key_sources(settings) else "disabled"
    if mode == "jwt":
        return BearerAuth(TokenVerifier.from_settings(settings))
    if not is_loopback_host(settings.http_host):
        raise ConfigError(
            f"auth is disabled and WORKERS_HTTP_HOST={settings.http_host} is not loopback: "
            "set WORKERS_AUTH_JWT_SECRET_FILE, WORKERS_AUTH_JWT_PUBLIC_KEY_FILE or "
            "WORKERS_AUTH_JWKS_FILE (or bind 127.0.0.1)")
    log.warning("auth.disabled", http_host=settings.http_host,
                detail="every caller is `anonymous` with every scope; loopback only")
    return BearerAuth(None)


@dataclass(frozen=True)
class MatchedRoute:
    template: str
    params: dict[str, str]


def match_route(routes: list[BaseRoute], scope: Scope) -> MatchedRoute | None:
    """The route the router will pick (a path match with another method: the 405 route)."""
    partial: MatchedRoute | None = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        found = MatchedRoute(str(getattr(route, "path", "")),
                             {k: str(v) for k, v in child.get("path_params", {}).items()})
        if match is Match.FULL:
            return found
        partial = partial or found
    return partial


def _quoted(text: str) -> str:
    """An RFC 6750 auth-param value: printable ASCII without quote or backslash."""
    return re.sub(r'[^\x20-\x7e]|["\\]', "", text)[:200]


def unauthorized(exc: InvalidToken) -> JSONResponse:
    # RFC 6750 §3.1: no error code when the request carried no credentials at all.
    challenge = f'Bearer realm="{REALM}"'
    if not exc.detail.get("missing"):
        challenge += f', error="invalid_token", error_description="{_quoted(exc.message)}"'
    response = problems.problem(401, "invalid-token", exc.message)
    response.headers["WWW-Authenticate"] = challenge
    return response


def forbidden(needed: AuthScope) -> JSONResponse:
    response = problems.problem(403, "insufficient-scope",
                                f"this call needs the scope {needed.value}",
                                required_scope=needed.value)
    response.headers["WWW-Authenticate"] = (
        f'Bearer realm="{REALM}", error="insufficient_scope", scope="{needed.value}"')
    return response


class AuthMiddleware:
    """Route policy -> 401/403, the ``Principal`` on ``request.state``, audit records."""

    def __init__(self, app: ASGIApp, *, routes: list[BaseRoute], authenticate: BearerAuth,
                 audit: AuditLog) -> None:
        self.app = app
        self.routes = routes  # the router's live list: routes added later are covered
        self.authenticate = authenticate
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        route = match_route(self.routes, scope)
        method = scope.get("method", "GET")
        needed = policy.required_scope(method, route.template) if route else None
        if route is None or needed is None:  # unknown path (the router's 404) or public
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else None
        try:
            principal = self.authenticate(Headers(scope=scope).get("authorization"))
        except InvalidToken as exc:
            log.warning("auth.rejected", reason=exc.message, route=f"{method} {route.template}",
                        client=client)
            await self._refuse(unauthorized(exc), scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        audited = policy.is_audited(method, route.template, needed)
        if not principal.allows(needed):
            await self._refuse(forbidden(needed), scope, receive, send)
            if audited:
                await self._record(principal, method, route, 403, client)
            return
        if not audited:
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            await self._record(principal, method, route, status, client)

    @staticmethod
    async def _refuse(response: JSONResponse, scope: Scope, receive: Receive,
                      send: Send) -> None:
        if scope["type"] == "websocket":  # closing before accept answers the handshake 403
            await send({"type": "websocket.close", "code": 1008})
            return
        await response(scope, receive, send)

    async def _record(self, principal: Principal, method: str, route: MatchedRoute,
                      status: int, client: str | None) -> None:
        try:
            await self.audit.record(principal.sub, f"{method} {route.template}", route.params,
                                    status, client)
        except Exception as exc:  # the response is gone; losing the record must be loud
            log.error("audit.write_failed", error=repr(exc), actor=principal.sub,
                      action=f"{method} {route.template}", status=status)


def principal_of(request: Request) -> Principal:
    """The caller, as the middleware authenticated it (``anonymous`` on public routes)."""
    principal: Principal = getattr(request.state, "principal", ANONYMOUS)
    return principal


async def _jobs_in(request: Request) -> int:
    try:
        body: Any = await request.json()  # FastAPI has read and parsed it already
    except (ValueError, UnicodeDecodeError):
        return 1
    jobs = body.get("jobs") if isinstance(body, dict) else None
    return len(jobs) if isinstance(jobs, list) else 1


async def enforce_submission_quota(request: Request, response: Response) -> None:
    """App-wide dependency: on the submission routes, count the jobs against the caller's
    limit (token sub; client address when anonymous); 429 with Retry-After past it."""
    route = request.scope.get("route")
    key = (request.method, str(getattr(route, "path", "")))
    quota: SubmissionQuota | None = getattr(request.app.state, "submission_quota", None)
    if key not in policy.SUBMISSION_ROUTES or quota is None:
        return
    principal = principal_of(request)
    host = request.client.host if request.client else "unknown"
    client = f"ip:{host}" if principal.anonymous else principal.sub
    jobs = await _jobs_in(request) if key in policy.BATCH_ROUTES else 1
    decision = await quota.charge(client, jobs)
    if decision is None:
        return
    if not decision.allowed:
        raise SubmissionRateExceeded(
            f"{client} is over its submission rate; retry in "
            f"{decision.headers()['Retry-After']} s", decision)
    response.headers.update(decision.headers())


async def _rate_exceeded(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SubmissionRateExceeded)
    response = problems.problem(429, exc.problem_type, exc.message,
                                retry_after_s=exc.decision.retry_after_s)
    response.headers.update(exc.decision.headers())
    return response


def _document_security(app: FastAPI) -> None:
    """OpenAPI: the bearer scheme (the Authorize button in /docs) and each operation's scope."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("securitySchemes", {})[
            BEARER_SCHEME] = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                              "description": "Scopes: " + ", ".join(s.value for s in AuthScope)}
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                needed = policy.required_scope(method.upper(), path)
                operation["security"] = [{BEARER_SCHEME: []}] if needed else []
                if needed:
                    operation["x-required-scope"] = needed.value
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension


def install(app: FastAPI, settings: Settings, redis: aioredis.Redis) -> None:
    """Wire auth into ``app``; call before adding routes (the quota dependency is app-wide).
    Raises ConfigError for settings that cannot start (see ``bearer_auth_from_settings``)."""
    authenticate = bearer_auth_from_settings(settings)
    audit = AuditLog(redis, RedisKeys(settings.redis_prefix), settings.audit_maxlen)
    app.state.submission_quota = SubmissionQuota.from_settings(redis, settings)
    app.state.audit_log = audit
    app.router.dependencies.append(Depends(enforce_submission_quota))
    app.add_exception_handler(SubmissionRateExceeded, _rate_exceeded)
    app.add_middleware(AuthMiddleware, routes=app.router.routes, authenticate=authenticate,
                       audit=audit)
    _document_security(app)
