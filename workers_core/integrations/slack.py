"""Slack posting through slack_sdk's async clients, Slack's answers translated into ``Retry``,
``NonRetryable`` or ``OutcomeUnknown``.

Slack reports a Web API failure as ``{"ok": false, "error": word}`` (HTTP 200) and a webhook
failure as an HTTP status with the word as text; both answer 429 with ``Retry-After`` when
rate limited (docs.slack.dev: chat.postMessage, incoming webhooks, rate limits). A request
that never connected posted nothing; one that lost its answer may have posted.

The bot token and the webhook URL (its path is the credential) never reach an error text:
transport errors are raised without their cause, whose text can hold the URL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from workers_core.config import Settings
from workers_core.errors import ConfigError, NonRetryable, OutcomeUnknown, Retry, WorkersError
from workers_core.httputil import retry_after_s
from workers_core.integrations.netguard import is_loopback_host
from workers_core.observability import metrics

# Worth trying again: Slack's transient failures (rollup_error is the webhook's 500 word).
TEMPORARY_ERRORS = frozenset(
    {
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "rollup_error",
    }
)
# Known definitive refusals; any other word is also final, reported as unknown.
PERMANENT_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "invalid_token",
        "missing_scope",
        "not_allowed_token_type",
        "no_permission",
        "ekm_access_denied",
        "restricted_action",
        "action_prohibited",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "channel_is_archived",
        "user_not_found",
        "posting_to_general_channel_denied",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "msg_blocks_too_long",
        "no_text",
        "too_many_attachments",
        "invalid_payload",
        "invalid_arguments",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "team_access_not_granted",
    }
)
INLINE_RETRY_AFTER_MAX_S = 5  # a longer Retry-After goes back to the queue
INLINE_RATE_LIMIT_RETRIES = 2
CONNECT_TIMEOUT_MAX_S = 10.0

# slack_sdk logs URLs and bodies when its logger's own level is DEBUG or unset; a level of
# INFO on the logger we hand it keeps the webhook URL out of logs even under DEBUG.
_sdk_log = logging.getLogger(f"{__name__}.sdk")
_sdk_log.setLevel(logging.INFO)


class SlackConfigError(ConfigError):
    """Settings that would send a credential in clear or cannot name a URL at all."""

    problem_type = "slack-config"


class SlackMessage(BaseModel):
    """One message in Slack's own field names; ``None`` fields are not sent."""

    model_config = ConfigDict(frozen=True)

    text: str
    blocks: list[dict[str, Any]] | None = None
    channel: str | None = None
    thread_ts: str | None = None
    reply_broadcast: bool | None = None
    unfurl_links: bool | None = None
    unfurl_media: bool | None = None
    username: str | None = None
    icon_emoji: str | None = None


class SlackPosted(BaseModel):
    """Slack's answer: the channel ID and ``ts`` (the message's id); a webhook gives neither."""

    channel: str | None = None
    ts: str | None = None


class _ShortRateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """Waits out a short ``Retry-After`` in place; a longer one is raised as
    ``Retry(after_s=...)`` so the job waits in the queue, not in a worker slot."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        raw = [v for k, v in response.headers.items() if k.lower() == "retry-after"]
        if not raw:
            return True  # the handler waits about a second
        # The handler reads the header with int(): whole delta-seconds only; an HTTP date or
        # a fraction is left to the queue (Retry with the parsed delay).
        value = raw[0][0] if isinstance(raw[0], list) and raw[0] else raw[0]
        if not str(value).strip().isdigit():
            return False
        after = retry_after_s(response.headers)
        return after is not None and after <= INLINE_RETRY_AFTER_MAX_S


def _retry_handlers() -> list[AsyncRetryHandler]:
    # Rate limits only: slack_sdk's default handler resends after a connection reset,
    # which may post the message twice.
    return [_ShortRateLimitRetry(max_retry_count=INLINE_RATE_LIMIT_RETRIES)]


class SlackNotifier:
    """Posts with the bot token (Web API) or to the incoming webhook named in settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        _check_url("WORKERS_SLACK_API_URL", settings.slack_api_url)
        if settings.slack_webhook_url is not None:
            _check_url("WORKERS_SLACK_WEBHOOK_URL", settings.slack_webhook_url.get_secret_value())

    def _session(self) -> aiohttp.ClientSession:
        total_s = self.settings.slack_timeout_s
        # connect < total: a connect timeout (nothing sent) is told apart from a lost answer.
        timeout = aiohttp.ClientTimeout(
            total=total_s, connect=min(total_s / 2, CONNECT_TIMEOUT_MAX_S)
        )
        # A session per post and no keep-alive: a pooled connection the server closed
        # meanwhile would fail like a lost answer and stop the job for nothing.
        return aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(force_close=True)
        )

    async def post_message(self, message: SlackMessage) -> SlackPosted:
        """``chat.postMessage``. Raises ``Retry``, ``NonRetryable`` or ``OutcomeUnknown``."""
        args = message.model_dump(exclude_none=True)
        data = await self._web_api("chat.postMessage", lambda c: c.chat_postMessage(**args))
        return SlackPosted(channel=data.get("channel"), ts=data.get("ts"))

    async def auth_test(self) -> dict[str, Any]:
        """``auth.test``: the token works (deep health); returns the team and bot identity."""
        return await self._web_api("auth.test", lambda c: c.auth_test())

    async def _web_api(
        self,
        method: str,
        call: Callable[[AsyncWebClient], Awaitable[AsyncSlackResponse]],
    ) -> dict[str, Any]:
        token = _secret(self.settings.slack_bot_token, "WORKERS_SLACK_BOT_TOKEN")
        async with self._session() as session:
            client = AsyncWebClient(
                token=token,
                base_url=self.settings.slack_api_url,
                session=session,
                retry_handlers=_retry_handlers(),
                logger=_sdk_log,
            )
            with metrics.external_call("slack", method):
                try:
                    response = await call(client)
                except SlackApiError as exc:
                    raise _api_error(f"Slack {method}", exc) from exc
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise _transport_error(f"Slack {method}", exc) from None
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def post_webhook(self, message: SlackMessage) -> SlackPosted:
        """Incoming webhook post. Raises ``Retry``, ``NonRetryable`` or ``OutcomeUnknown``."""
        with metrics.external_call("slack", "webhook"):
            return await self._post_webhook(message)

    async def _post_webhook(self, message: SlackMessage) -> SlackPosted:
        url = _secret(self.settings.slack_webhook_url, "WORKERS_SLACK_WEBHOOK_URL")
        async with self._session() as session:
            client = AsyncWebhookClient(
                url, session=session, retry_handlers=_retry_handlers(), logger=_sdk_log
            )
            try:
                response = await client.send(
                    text=message.text,
                    blocks=message.blocks,
                    unfurl_links=message.unfurl_links,
                    unfurl_media=message.unfurl_media,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _transport_error("the Slack webhook", exc) from None
        if response.status_code != 200:
            body = response.body.strip()
            word = body if re.fullmatch(r"[a-z_]{1,64}", body) else ""
            raise _classify("the Slack webhook", response.status_code, word, response.headers)
        return SlackPosted()


def _secret(value: SecretStr | None, setting: str) -> str:
    if value is None:
        raise NonRetryable(f"{setting} is not set")
    return value.get_secret_value()


def _check_url(setting: str, url: str) -> None:
    """http(s) only, and https beyond loopback: the URL or the header carries a credential.
    The URL itself is never quoted (a webhook URL is a secret)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SlackConfigError(f"{setting} must be an http(s) URL")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise SlackConfigError(
            f"{setting} must use https for a host other than loopback ({parts.hostname!r})"
        )



def _api_error(what: str, exc: SlackApiError) -> WorkersError:
    # The response is a SlackResponse, or the raw aiohttp response when the body wasn't JSON.
    response = exc.response
    status = int(getattr(response, "status_code", getattr(response, "status", 0)))
    data = getattr(response, "data", None)
    error = str(data.get("error") or "") if isinstance(data, dict) else ""
    return _classify(what, status, error, getattr(response, "headers", None) or {})


def _classify(what: str, status: int, error: str, headers: Mapping[str, Any]) -> WorkersError:
    """Slack's answer (HTTP status, error word) to a retryable or a final error."""
    if status == 429 or error in {"ratelimited", "rate_limited"}:
        return Retry(f"{what} is rate limited", after_s=retry_after_s(headers))
    if error in TEMPORARY_ERRORS or status >= 500:
        return Retry(f"{what} failed for now: {error or f'HTTP {status}'}")
    if error in PERMANENT_ERRORS:
        return NonRetryable(f"{what} refused the message: {error}")
    return NonRetryable(
        f"{what} refused the message with an unknown error {error or f'HTTP {status}'!r}"
    )


def _transport_error(what: str, exc: Exception) -> WorkersError:
    """Only the exception's type is quoted: aiohttp's texts can contain the URL."""
    kind = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError):
        return Retry(f"{what} is unreachable ({kind}); nothing was sent")
    if isinstance(exc, aiohttp.InvalidURL):
        return NonRetryable(f"{what} URL is not valid ({kind})")
    return OutcomeUnknown(
        f"{what} gave no answer ({kind}); the message may have been posted, so it is not sent again"
    )
