"""OAuth2 tokens for ANAF's API (e-Factura, e-Transport): stored in Redis, refreshed before
they expire, by ONE caller at a time, with the rotated refresh token persisted atomically.

ANAF (OAuth PDF, notes/anaf.md §2.2): the token endpoint takes HTTP Basic
``client_id:client_secret``; a refresh returns new access AND refresh tokens and the old
refresh token stops working, so two replicas refreshing at once would leave one holding a
dead token. Hence a Redis lock around refresh, a re-read of the store under the lock, and a
single ``SET`` of both tokens. Access tokens live 90 days, refresh tokens 365.

Tokens are ``SecretStr`` in memory and never reach a log line or an error message.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import redis.asyncio as aioredis
import structlog
from pydantic import BaseModel, SecretStr
from redis.exceptions import LockError

from workers_core.clock import Clock, SystemClock
from workers_core.config import Settings
from workers_core.integrations.anaf.errors import (
    AnafNotAuthorised,
    AnafOAuthError,
    AnafRejected,
    AnafTemporaryError,
    AnafUnavailable,
)
from workers_core.integrations.anaf.http import DEFAULT_RETRY, AnafHttp
from workers_core.jobs.keys import RedisKeys

AUTHORIZE_PATH = "/anaf-oauth2/v1/authorize"
TOKEN_PATH = "/anaf-oauth2/v1/token"
REFRESH_LIFETIME_S = 365 * 24 * 3600  # 525600 min (OAuth PDF); not in the token answer
LOGIN_HINT = "run `workers-core anaf login` to authorise the application again"

log = structlog.get_logger("workers_core.anaf.oauth")


class TokenSet(BaseModel):
    access_token: SecretStr
    refresh_token: SecretStr
    expires_at: float
    refresh_expires_at: float
    obtained_at: float

    def dump(self) -> str:
        data = self.model_dump()
        data["access_token"] = self.access_token.get_secret_value()
        data["refresh_token"] = self.refresh_token.get_secret_value()
        return json.dumps(data)

    def same_refresh_token(self, other: TokenSet) -> bool:
        return self.refresh_token.get_secret_value() == other.refresh_token.get_secret_value()


class RedisTokenStore:
    """Both tokens under one key, written with one ``SET`` so they never disagree."""

    def __init__(self, redis: aioredis.Redis, key: str, clock: Clock | None = None) -> None:
        self.redis: Any = redis
        self.key = key
        self.clock = clock or SystemClock()

    async def load(self) -> TokenSet | None:
        raw = await self.redis.get(self.key)
        return None if raw is None else TokenSet.model_validate_json(raw)

    async def save(self, tokens: TokenSet) -> None:
        ttl_s = max(int(tokens.refresh_expires_at - self.clock.now()), 1)
        await self.redis.set(self.key, tokens.dump(), ex=ttl_s)


class AnafOAuth:
    """``await oauth.access_token()``: a valid Bearer token, refreshed ``refresh_margin_s``
    before it expires; ``exchange_code`` completes the browser login."""

    def __init__(
        self,
        http: AnafHttp,
        redis: aioredis.Redis,
        key: str,
        *,
        client_id: str,
        client_secret: SecretStr,
        redirect_uri: str,
        refresh_margin_s: float = 7 * 24 * 3600,
        lock_timeout_s: float = 120.0,
        clock: Clock | None = None,
    ) -> None:
        self.http = http
        self.redis = redis
        self.clock = clock or SystemClock()
        self.store = RedisTokenStore(redis, key, self.clock)
        self.lock_key = f"{key}:refresh-lock"
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.refresh_margin_s = refresh_margin_s
        self.lock_timeout_s = lock_timeout_s

    @classmethod
    def from_settings(
        cls, settings: Settings, redis: aioredis.Redis, clock: Clock | None = None
    ) -> AnafOAuth:
        if not settings.anaf_client_id or settings.anaf_client_secret is None:
            raise AnafNotAuthorised(
                "WORKERS_ANAF_CLIENT_ID and WORKERS_ANAF_CLIENT_SECRET "
                "must be set (ANAF 'Profil OAuth')"
            )
        http = AnafHttp(settings.anaf_oauth_url, timeout_s=settings.anaf_timeout_s)
        key = RedisKeys(settings.redis_prefix).anaf_oauth(settings.anaf_client_id)
        # The lock outlives a refresh that waits for every retry of the token call.
        return cls(
            http,
            redis,
            key,
            client_id=settings.anaf_client_id,
            client_secret=settings.anaf_client_secret,
            redirect_uri=settings.anaf_redirect_uri,
            # Longer than one refresh may take: every attempt's timeout plus the waits between.
            lock_timeout_s=settings.anaf_timeout_s * DEFAULT_RETRY.max_attempts + 30,
            clock=clock,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    def authorize_url(self, state: str | None = None) -> str:
        """Where the user logs in with the qualified certificate (browser only)."""
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "token_content_type": "jwt",
        }
        if state:
            query["state"] = state
        return f"{self.http.base_url}{AUTHORIZE_PATH}?{urlencode(query)}"

    async def exchange_code(self, code: str) -> TokenSet:
        """The callback's ``code`` → stored tokens (ANAF: within a minute of the login)."""
        tokens = await self._grant(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "token_content_type": "jwt",
            },
            previous=None,
        )
        await self.store.save(tokens)
        log.info("anaf.oauth.authorised", expires_at=tokens.expires_at)
        return tokens

    async def access_token(self) -> str:
        tokens = await self.store.load()
        if tokens is None:
            raise AnafNotAuthorised(f"no ANAF tokens stored: {LOGIN_HINT}")
        if not self._due(tokens):
            return tokens.access_token.get_secret_value()
        return (await self.refresh()).access_token.get_secret_value()

    def _due(self, tokens: TokenSet) -> bool:
        return tokens.expires_at - self.clock.now() <= self.refresh_margin_s

    async def refresh(self, force: bool = False) -> TokenSet:
        """Refresh once for the whole cluster: whoever waited on the lock reads the result."""
        lock = self.redis.lock(
            self.lock_key, timeout=self.lock_timeout_s, blocking_timeout=self.lock_timeout_s
        )
        try:
            async with lock:
                return await self._refresh_locked(force)
        except LockError as exc:
            raise AnafUnavailable(
                "another replica is still refreshing the ANAF token", after_s=5.0
            ) from exc

    async def _refresh_locked(self, force: bool) -> TokenSet:
        current = await self.store.load()
        if current is None:
            raise AnafNotAuthorised(f"no ANAF tokens stored: {LOGIN_HINT}")
        if not force and not self._due(current):
            return current  # refreshed by another caller while we waited
        try:
            tokens = await self._grant(
                {
                    "grant_type": "refresh_token",
                    "refresh_token": current.refresh_token.get_secret_value(),
                },
                previous=current,
            )
        except AnafTemporaryError:
            if current.expires_at - self.clock.now() > 60:  # still usable: try again later
                log.warning("anaf.oauth.refresh_postponed", expires_at=current.expires_at)
                return current
            raise
        except AnafOAuthError as exc:
            stored = await self.store.load()  # rotated by someone whose lock had expired?
            if stored is not None and not stored.same_refresh_token(current):
                return stored
            raise AnafOAuthError(
                f"ANAF refused the refresh token ({exc.error}): {LOGIN_HINT}", exc.error, exc.status
            ) from None
        await self.store.save(tokens)
        log.info("anaf.oauth.refreshed", expires_at=tokens.expires_at)
        return tokens

    async def _grant(self, form: dict[str, str], previous: TokenSet | None) -> TokenSet:
        now = self.clock.now()
        response = await self.http.request(
            "POST",
            TOKEN_PATH,
            data=form,
            accept=(400, 401),
            auth=(self.client_id, self.client_secret.get_secret_value()),
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            error = (
                str(body.get("error") or "invalid_request")
                if isinstance(body, dict)
                else "unreadable_answer"
            )
            raise AnafOAuthError(
                f"ANAF token endpoint refused: {error} (HTTP {response.status_code})",
                error,
                response.status_code,
            )
        if not body.get("access_token"):
            raise AnafRejected("ANAF token endpoint answered without an access token")
        refresh = body.get("refresh_token") or (
            previous.refresh_token.get_secret_value() if previous else None
        )
        if not refresh:
            raise AnafRejected("ANAF token endpoint answered without a refresh token")
        return TokenSet(
            access_token=SecretStr(str(body["access_token"])),
            refresh_token=SecretStr(refresh),
            expires_at=now + float(body.get("expires_in") or 0),
            obtained_at=now,
            refresh_expires_at=now + REFRESH_LIFETIME_S,
        )
