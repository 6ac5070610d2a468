"""Errors mapped at the HTTP boundary: every error is an RFC 9457 problem (JSON)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def install(app: FastAPI) -> None:
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
