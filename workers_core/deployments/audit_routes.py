"""``GET /v1/audit``: the admin actions recorded by the auth middleware (scope ops:admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import FastAPI, Query, Request

from workers_core.security.audit import AuditLog, AuditPage


def install(app: FastAPI) -> None:
    @app.get("/v1/audit", tags=["ops"])
    async def list_audit(
        request: Request,
        actor: Annotated[str | None, Query(max_length=256, description="A token's sub.")] = None,
        action: Annotated[str | None, Query(
            max_length=256, description="Part of `METHOD /route`, e.g. `:cancel`.")] = None,
        since: Annotated[datetime | None, Query(description="ISO 8601; older ones left out.")]
        = None,
        cursor: Annotated[str | None, Query(pattern=r"^\d+-\d+$")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> AuditPage:
        """Admin actions newest first: who, what, target, when, status and client address;
        pass `next_cursor` back as `cursor` for older ones."""
        audit: AuditLog = request.app.state.audit_log
        return await audit.page(actor=actor, action=action, since=since, cursor=cursor,
                                limit=limit)
