"""ANAF OAuth2 tokens: stored in Redis, refreshed once for everyone, rotation-safe, never
logged. Real HTTP against the ANAF sandbox, real Redis; time is moved, not slept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from structlog.testing import capture_logs

from workers_core.clock import ManualClock
from workers_core.config import Settings
from workers_core.integrations.anaf.errors import AnafNotAuthorised, AnafOAuthError
from workers_core.integrations.anaf.oauth import AnafOAuth
from workers_core.jobs.store import JobStore
from workers_core.sandbox.anaf import AnafSandbox

DAY_S = 24 * 3600


@pytest.fixture
def anaf() -> Iterator[AnafSandbox]:
    with AnafSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def anaf_settings(settings: Settings, anaf: AnafSandbox) -> Settings:
    return Settings.model_validate(
        {
            **settings.model_dump(),
            "anaf_oauth_url": anaf.oauth_url,
            "anaf_api_url": anaf.api_url,
            "anaf_client_id": anaf.client_id,
            "anaf_client_secret": anaf.client_secret,
            "anaf_timeout_s": 5.0,
        }
    )


@pytest.fixture
async def oauth(
    anaf_settings: Settings, store: JobStore, clock: ManualClock
) -> AsyncIterator[AnafOAuth]:
    client = AnafOAuth.from_settings(anaf_settings, store.redis, clock=clock)
    yield client
    await client.aclose()


async def login(oauth: AnafOAuth, anaf: AnafSandbox) -> str:
    tokens = await oauth.exchange_code(anaf.issue_code(oauth.redirect_uri))
    return tokens.access_token.get_secret_value()


async def hello(anaf: AnafSandbox, token: str) -> int:
    async with httpx.AsyncClient(base_url=anaf.api_url) as http:
        answer = await http.get(
            "/TestOauth/jaxrs/hello",
            params={"name": "x"},
            headers={"Authorization": f"Bearer {token}"},
        )
    return answer.status_code


async def test_the_exchanged_code_gives_a_working_stored_token(
    oauth: AnafOAuth, anaf: AnafSandbox
) -> None:
    access = await login(oauth, anaf)
    assert await oauth.access_token() == access
    assert await hello(anaf, access) == 200
    assert "response_type=code" in oauth.authorize_url("s1")


async def test_no_refresh_while_the_token_is_far_from_expiry(
    oauth: AnafOAuth, anaf: AnafSandbox, clock: ManualClock
) -> None:
    access = await login(oauth, anaf)
    clock.advance(80 * DAY_S)  # 10 days left of 90, margin 7
    assert await oauth.access_token() == access and anaf.refreshes == 0


async def test_the_token_is_refreshed_before_it_expires(
    oauth: AnafOAuth, anaf: AnafSandbox, clock: ManualClock
) -> None:
    access = await login(oauth, anaf)
    clock.advance(84 * DAY_S)  # 6 days left: inside the 7-day margin, still valid
    fresh = await oauth.access_token()
    assert fresh != access and anaf.refreshes == 1 and await hello(anaf, fresh) == 200
    stored = await oauth.store.load()
    assert stored is not None
    assert stored.refresh_token.get_secret_value() in anaf.state.refresh_tokens
    assert await oauth.access_token() == fresh and anaf.refreshes == 1


async def test_five_concurrent_callers_refresh_once_and_keep_the_rotated_token(
    anaf_settings: Settings, store: JobStore, anaf: AnafSandbox, clock: ManualClock
) -> None:
    # Five replicas: separate clients, one Redis.
    replicas = [AnafOAuth.from_settings(anaf_settings, store.redis, clock=clock) for _ in range(5)]
    try:
        await login(replicas[0], anaf)
        clock.advance(89 * DAY_S)
        tokens = await asyncio.gather(*(r.access_token() for r in replicas))
    finally:
        await asyncio.gather(*(r.aclose() for r in replicas))
    assert len(set(tokens)) == 1 and anaf.refreshes == 1
    assert anaf.state.token_requests == 2  # the login and ONE refresh: nobody tried again
    stored = await replicas[0].store.load()
    assert stored is not None and stored.access_token.get_secret_value() == tokens[0]
    assert anaf.state.refresh_tokens == {stored.refresh_token.get_secret_value()}


async def test_a_replayed_refresh_token_is_refused_without_leaking_it(
    oauth: AnafOAuth, anaf: AnafSandbox
) -> None:
    await login(oauth, anaf)
    old = await oauth.store.load()
    assert old is not None
    await oauth.refresh(force=True)
    await oauth.store.save(old)  # a replica that lost the rotated token writes back the old
    with capture_logs() as logs, pytest.raises(AnafOAuthError) as info:
        await oauth.refresh(force=True)
    assert info.value.error == "invalid_grant" and "workers-core anaf login" in str(info.value)
    secrets = {old.refresh_token.get_secret_value(), old.access_token.get_secret_value()}
    text = f"{info.value} {info.value.to_problem()} {logs}"
    assert not any(secret in text for secret in secrets)


async def test_tokens_never_reach_the_logs(oauth: AnafOAuth, anaf: AnafSandbox) -> None:
    with capture_logs() as logs:
        await login(oauth, anaf)
        refreshed = await oauth.refresh(force=True)
    assert [entry["event"] for entry in logs] == ["anaf.oauth.authorised", "anaf.oauth.refreshed"]
    secrets = {
        refreshed.access_token.get_secret_value(),
        refreshed.refresh_token.get_secret_value(),
        *anaf.state.spent_refresh_tokens,
    }
    assert not any(secret in str(logs) for secret in secrets)
    assert refreshed.refresh_token.get_secret_value() not in repr(refreshed)


async def test_a_wrong_client_secret_is_a_clear_error(
    anaf_settings: Settings, store: JobStore, anaf: AnafSandbox
) -> None:
    s = Settings.model_validate({**anaf_settings.model_dump(), "anaf_client_secret": "wrong"})
    client = AnafOAuth.from_settings(s, store.redis)
    try:
        with pytest.raises(AnafOAuthError, match="invalid_client"):
            await client.exchange_code(anaf.issue_code(client.redirect_uri))
    finally:
        await client.aclose()


async def test_without_stored_tokens_the_caller_is_told_to_log_in(oauth: AnafOAuth) -> None:
    with pytest.raises(AnafNotAuthorised, match="anaf login"):
        await oauth.access_token()
