"""Errors mapped at the HTTP boundary: every error is an RFC 9457 problem (JSON)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers_core.errors import StoreUnavailable, WorkersError

PROBLEM_JSON = "application/problem+json"


def field_errors(errors: Any, prefix: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """pydantic errors as ``{"field": "payload.to.0", "message": ..., "type": ...}``."""
    out = []
    for err in errors:
        loc = [*prefix, *err.get("loc", ())]
        if loc and loc[0] == "body":
            loc = loc[1:]
        out.append({
            "field": ".".join(str(p) for p in loc) or "body",
            "message": err.get("msg", "invalid"),
            "type": err.get("type", "value_error"),
        })
    return out


def problem(status: int, kind: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"https://workers-core.dev/problems/{kind}",
        "title": kind.replace("-", " "),
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


class PlainErrorsAsProblems:
    """Pure ASGI: an error answered below our handlers in plain text (Starlette's body
    limiter answers a body announced past a route's own limit with ``text/plain`` 413) is
    rewritten as a problem, so every error a client sees has the same shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        replaced = False

        async def rewrite(message: Message) -> None:
            nonlocal held, replaced
            if replaced:  # the rest of the plain body
                return
            if message["type"] == "http.response.start" and message["status"] >= 400:
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(b"text/plain"):
                    held = message  # the body comes next: replace both
                    return
            if held is not None and message["type"] == "http.response.body":
                status = int(held["status"])
                text = bytes(message.get("body", b"")).decode("utf-8", "replace").strip()
                kind = "payload-too-large" if status == 413 else "http-error"
                response = problem(status, kind, text or "request refused")
                await send({"type": "http.response.start", "status": status,
                            "headers": response.raw_headers})
                await send({"type": "http.response.body", "body": response.body})
                replaced = True
                return
            await send(message)

        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await rewrite(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # a route's body limiter raises past our handlers
            error = _http_error(exc)
            if started or error is None:
                raise
            kind = "payload-too-large" if error.status_code == 413 else "http-error"
            response = problem(error.status_code, kind, str(error.detail))
            await response(scope, receive, send)


def _http_error(exc: BaseException) -> StarletteHTTPException | None:
    """The HTTP error inside ``exc`` (an exception group of only HTTP errors included)."""
    while isinstance(exc, BaseExceptionGroup):
        if not all(isinstance(e, StarletteHTTPException | BaseExceptionGroup)
                   for e in exc.exceptions):
            return None
        exc = exc.exceptions[0]
    return exc if isinstance(exc, StarletteHTTPException) else None


def install(app: FastAPI) -> None:
    # Outermost: FastAPI's own body limiter sits outside every user middleware.
    inner = app.build_middleware_stack
    setattr(app, "build_middleware_stack",  # noqa: B010 (a method replaced on this instance)
            lambda: PlainErrorsAsProblems(inner()))

    @app.exception_handler(WorkersError)
    async def _workers_error(request: Request, exc: WorkersError) -> JSONResponse:
        response = JSONResponse(exc.to_problem(), status_code=exc.status_code,
                                media_type=PROBLEM_JSON)
        if isinstance(exc, StoreUnavailable):
            settings = request.app.state.gateway.settings
            response.headers["Retry-After"] = str(settings.backpressure_retry_after_s)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc.errors())
        names = ", ".join(e["field"] for e in errors)
        return problem(422, "invalid-request", f"invalid fields: {names}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem(exc.status_code, kind, str(exc.detail))
