"""Per-client submission limits: 429 with Retry-After past the rate, per token sub or IP."""

from __future__ import annotations

import secrets

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from tests.unit.test_auth import JOB, build_app, client
from workers_core.clock import ManualClock
from workers_core.config import Settings, SubmitRate
from workers_core.jobs.store import JobStore
from workers_core.security.submit_quota import SubmissionQuota
from workers_core.security.tokens import mint_token


@pytest.fixture
def secret() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture
async def app(settings: Settings, store: JobStore, secret: str) -> FastAPI:
    return build_app(settings.model_copy(update={
        "auth_jwt_secret": SecretStr(secret), "submit_rate_limit": "1/h",
        "submit_rate_burst": 3,
        "submit_rate_overrides": {"etl-bot": SubmitRate(rate="1/h", burst=6)}}), store)


def token(secret: str, sub: str) -> str:
    return mint_token(secret, "HS256", sub, ["jobs:write"], 300)


async def test_past_the_burst_a_client_gets_429_with_retry_after(
    app: FastAPI, secret: str,
) -> None:
    async with client(app, token(secret, "ana")) as http:
        accepted = [await http.post("/v1/jobs", json=JOB) for _ in range(3)]
        refused = await http.post("/v1/jobs", json=JOB)
    assert [r.status_code for r in accepted] == [202, 202, 202]
    assert [r.headers["RateLimit-Remaining"] for r in accepted] == ["2", "1", "0"]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    retry_after = int(refused.headers["Retry-After"])  # whole seconds, rounded up
    assert 3590 <= retry_after <= 3600  # one job an hour: the next fits in an hour
    assert refused.json()["type"].endswith("/submission-rate-exceeded")


async def test_another_client_is_unaffected(app: FastAPI, secret: str) -> None:
    async with client(app, token(secret, "ana")) as http:
        for _ in range(4):
            await http.post("/v1/jobs", json=JOB)
    async with client(app, token(secret, "bob")) as http:
        assert (await http.post("/v1/jobs", json=JOB)).status_code == 202


async def test_a_batch_counts_each_job(app: FastAPI, secret: str) -> None:
    async with client(app, token(secret, "ana")) as http:
        two = await http.post("/v1/jobs:batch", json={"jobs": [JOB, JOB]})
        two_more = await http.post("/v1/jobs:batch", json={"jobs": [JOB, JOB]})
        one = await http.post("/v1/jobs", json=JOB)
    assert (two.status_code, two_more.status_code, one.status_code) == (202, 429, 202)


async def test_a_subject_override_gets_its_own_rate(app: FastAPI, secret: str) -> None:
    async with client(app, token(secret, "etl-bot")) as http:
        answers = [(await http.post("/v1/jobs", json=JOB)).status_code for _ in range(7)]
    assert answers == [202] * 6 + [429]


async def test_anonymous_clients_are_told_apart_by_address(
    settings: Settings, store: JobStore,
) -> None:
    app = build_app(settings.model_copy(update={"submit_rate_limit": "1/h",
                                                "submit_rate_burst": 1}), store)

    def from_ip(ip: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 5000)),
                                 base_url="http://gw")

    async with from_ip("127.0.0.2") as first, from_ip("127.0.0.3") as second:
        answers = [(await first.post("/v1/jobs", json=JOB)).status_code,
                   (await first.post("/v1/jobs", json=JOB)).status_code,
                   (await second.post("/v1/jobs", json=JOB)).status_code]
    assert answers == [202, 429, 202]


async def test_an_empty_rate_means_no_limit(settings: Settings, store: JobStore) -> None:
    app = build_app(settings.model_copy(update={"submit_rate_limit": ""}), store)
    async with client(app) as http:
        resp = await http.post("/v1/jobs", json=JOB)
    assert resp.status_code == 202 and "RateLimit-Remaining" not in resp.headers


async def test_the_bucket_refills_and_a_big_batch_pushes_later_ones_back(
    store: JobStore, clock: ManualClock,
) -> None:
    quota = SubmissionQuota(store.redis, store.keys, SubmitRate(rate="10/s", burst=5),
                            clock=clock)
    big = await quota.charge("ana", 20)  # larger than the burst: allowed on a full bucket
    after = await quota.charge("ana", 1)
    assert big is not None and big.allowed
    assert after is not None and not after.allowed
    # 20 jobs at 10/s take 2 s; one more fits once the bucket holds one (0.1 s) of its 5.
    assert after.retry_after_s == pytest.approx(2.0 + 0.1 - 0.5, abs=1e-3)
    clock.advance(1.61)  # just past the boundary: equality is at the mercy of float sums
    again = await quota.charge("ana", 1)
    assert again is not None and again.allowed and again.remaining == 0
