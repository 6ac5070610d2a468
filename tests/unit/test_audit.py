"""The audit log: admin actions recorded after the response, served by GET /v1/audit."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from structlog.testing import capture_logs

from tests.unit.test_auth import JOB, build_app, client
from workers_core.config import Settings
from workers_core.jobs.store import JobStore
from workers_core.security.audit import AuditLog
from workers_core.security.tokens import mint_token


@pytest.fixture
def secret() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture
async def app(settings: Settings, store: JobStore, secret: str) -> FastAPI:
    return build_app(settings.model_copy(update={"auth_jwt_secret": SecretStr(secret)}), store)


def token(secret: str, sub: str, *scopes: str) -> str:
    return mint_token(secret, "HS256", sub, scopes, 300)


async def submit(http: httpx.AsyncClient) -> str:
    resp = await http.post("/v1/jobs", json=JOB)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


async def audit(app: FastAPI, secret: str, **params: str | int) -> dict[str, object]:
    async with client(app, token(secret, "auditor", "ops:admin")) as http:
        resp = await http.get("/v1/audit", params=params)
    assert resp.status_code == 200, resp.text
    page: dict[str, object] = resp.json()
    return page


async def test_a_cancel_and_a_retry_are_recorded_with_who_what_and_result(
    app: FastAPI, secret: str,
) -> None:
    async with client(app, token(secret, "ana", "jobs:write", "jobs:read")) as http:
        job_id = await submit(http)
        with capture_logs() as logs:
            assert (await http.post(f"/v1/jobs/{job_id}:cancel")).status_code == 200
            assert (await http.post(f"/v1/jobs/{job_id}:retry")).status_code == 409
        assert (await http.get(f"/v1/jobs/{job_id}")).status_code == 200  # reads: no record
    page = await audit(app, secret)
    retry, cancel = page["items"]  # type: ignore[misc]
    assert cancel["actor"] == "ana" and cancel["action"] == "POST /v1/jobs/{job_id}:cancel"
    assert cancel["target"] == job_id and cancel["params"] == {"job_id": job_id}
    assert (cancel["status"], cancel["result"], cancel["client"]) == (200, "ok", "127.0.0.1")
    assert retry["action"].endswith(":retry") and (retry["status"], retry["result"]) == (
        409, "error")
    assert abs(datetime.fromisoformat(cancel["at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert [e["action"] for e in logs if e["event"] == "audit"] == [
        cancel["action"], retry["action"]]


async def test_submissions_are_not_audited_but_a_refused_admin_call_is(
    app: FastAPI, secret: str,
) -> None:
    async with client(app, token(secret, "bob", "jobs:write")) as http:
        await submit(http)
        assert (await http.delete("/v1/webhooks/wh-1")).status_code == 403
    [refused] = (await audit(app, secret))["items"]  # type: ignore[misc]
    assert (refused["actor"], refused["action"], refused["result"]) == (
        "bob", "DELETE /v1/webhooks/{webhook_id}", "denied")


async def test_filters_by_actor_action_and_since(app: FastAPI, secret: str) -> None:
    for sub in ("ana", "bob"):
        async with client(app, token(secret, sub, "jobs:write")) as http:
            job_id = await submit(http)
            await http.post(f"/v1/jobs/{job_id}:cancel")
            await http.post(f"/v1/jobs/{job_id}:retry")
    by_ana = (await audit(app, secret, actor="ana"))["items"]
    assert {r["actor"] for r in by_ana} == {"ana"} and len(by_ana) == 2  # type: ignore[union-attr]
    cancels = (await audit(app, secret, action=":cancel"))["items"]
    assert [r["actor"] for r in cancels] == ["bob", "ana"]  # type: ignore[union-attr]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await audit(app, secret, since=future))["items"] == []
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert len((await audit(app, secret, since=past))["items"]) == 4  # type: ignore[arg-type]


async def test_pages_follow_the_cursor_newest_first(store: JobStore, settings: Settings) -> None:
    log = AuditLog(store.redis, store.keys, maxlen=1000)
    ids = [await log.record("ops", f"POST /v1/queues/{{queue}}:drain#{i}", {"queue": "ocr"},
                            202, None) for i in range(7)]
    seen, cursor = [], None
    while True:
        page = await log.page(limit=3, cursor=cursor)
        seen += [r.id for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ids[::-1]
    only_odd = await log.page(action="#3", limit=3)
    assert [r.id for r in only_odd.items] == [ids[3]]


async def test_the_stream_is_capped(store: JobStore) -> None:
    log = AuditLog(store.redis, store.keys, maxlen=10)
    for i in range(250):
        await log.record("ops", "DELETE /v1/workers/{tag}", {"tag": str(i)}, 204, None)
    assert await store.redis.xlen(store.keys.audit) < 250  # trimmed by whole nodes of 100
