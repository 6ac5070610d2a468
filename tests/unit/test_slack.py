"""notify.slack against the Slack sandbox on loopback, through the real slack_sdk clients."""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import free_port
from workers_core.config import Settings
from workers_core.errors import NonRetryable, OutcomeUnknown, Retry
from workers_core.integrations.slack import SlackConfigError
from workers_core.jobs.side_effects import SideEffectLedger
from workers_core.jobs.store import JobStore
from workers_core.sandbox.slack import (
    ScriptedFailure,
    SlackSandbox,
    throwaway_token,
    throwaway_webhook_path,
)
from workers_core.tasks.base import JobContext
from workers_core.tasks.slack import NotifySlack, SlackPayload

BLOCKS = [
    {"type": "header", "text": {"type": "plain_text", "text": "Factura FCT-153"}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Total:* 1.190,00 RON"}},
]


@pytest.fixture
def sandbox() -> Iterator[SlackSandbox]:
    with SlackSandbox() as slack:
        yield slack


def api_settings(settings: Settings, slack: SlackSandbox, **changes: object) -> Settings:
    return Settings.model_validate(
        {
            **settings.model_dump(),
            "slack_api_url": slack.api_url,
            "slack_bot_token": slack.token,
            "slack_default_channel": "#facturi",
            **changes,
        }
    )


def webhook_settings(settings: Settings, slack: SlackSandbox, **changes: object) -> Settings:
    return Settings.model_validate(
        {**settings.model_dump(), "slack_webhook_url": slack.webhook_url, **changes}
    )


def context(s: Settings, store: JobStore, job_id: str, attempt: int = 1) -> JobContext:
    return JobContext(
        job_id=job_id,
        task="notify.slack",
        queue="notify.slack",
        attempt=attempt,
        max_attempts=5,
        correlation_id=None,
        settings=s,
        side_effects=SideEffectLedger(store.redis, s.redis_prefix, 3600),
    )


def payload(**kw: Any) -> SlackPayload:
    return SlackPayload.model_validate({"text": "Factura FCT-153 a fost trimisă", **kw})


async def notifier(s: Settings) -> NotifySlack:
    task = NotifySlack(s)
    await task.setup()
    return task


def secrets_of(s: Settings) -> list[str]:
    values = [v.get_secret_value() for v in (s.slack_bot_token, s.slack_webhook_url)
              if v is not None]
    if s.slack_webhook_url is not None:  # the path's last segment is the secret part
        values.append(s.slack_webhook_url.get_secret_value().rsplit("/", 1)[-1])
    return values


def assert_no_secret(exc: BaseException, s: Settings) -> None:
    """Neither the error nor the traceback the consumer logs may carry a credential."""
    logged = "".join(traceback.format_exception(exc))
    for secret in secrets_of(s):
        assert secret not in logged


# -- delivery ------------------------------------------------------------------------------


async def test_webhook_posts_text_and_blocks(
    settings: Settings, store: JobStore, sandbox: SlackSandbox
) -> None:
    s = webhook_settings(settings, sandbox)
    result = await (await notifier(s)).run(payload(blocks=BLOCKS), context(s, store, "job-sl-1"))
    [message] = sandbox.messages
    assert message["via"] == "webhook" and message["blocks"] == BLOCKS
    assert message["text"] == "Factura FCT-153 a fost trimisă"
    assert (result.mode, result.channel, result.ts, result.duplicate) == (
        "webhook",
        None,
        None,
        False,
    )


async def test_blocks_without_text_post_their_text_as_the_notification_fallback(
    settings: Settings, store: JobStore, sandbox: SlackSandbox
) -> None:
    s = webhook_settings(settings, sandbox)
    p = SlackPayload.model_validate({"blocks": BLOCKS})
    await (await notifier(s)).run(p, context(s, store, "job-sl-2"))
    [message] = sandbox.messages
    assert message["text"] == "Factura FCT-153\n*Total:* 1.190,00 RON"


async def test_api_posts_a_thread_reply_to_the_channel(
    settings: Settings, store: JobStore, sandbox: SlackSandbox
) -> None:
    s = api_settings(settings, sandbox)
    task = await notifier(s)
    parent = await task.run(payload(), context(s, store, "job-sl-3"))
    reply = await task.run(
        payload(text="Plătită", channel="C0FACTURI", thread_ts=parent.ts, reply_broadcast=True),
        context(s, store, "job-sl-4"),
    )
    assert (parent.mode, parent.channel) == ("api", "C0FACTURI")  # #facturi, by its ID
    assert reply.ts and reply.ts != parent.ts
    [_, message] = sandbox.messages
    assert message["channel"] == "C0FACTURI" and message["thread_ts"] == parent.ts
    assert message["text"] == "Plătită" and message["reply_broadcast"] is True


async def test_a_replayed_job_posts_once(
    settings: Settings, store: JobStore, sandbox: SlackSandbox
) -> None:
    s = api_settings(settings, sandbox)
    task = await notifier(s)
    first = await task.run(payload(), context(s, store, "job-sl-5", attempt=1))
    again = await task.run(payload(), context(s, store, "job-sl-5", attempt=2))
    assert len(sandbox.messages) == 1
    assert again.duplicate and (again.ts, again.channel) == (first.ts, first.channel)


# -- rate limits and temporary failures ----------------------------------------------------


@pytest.mark.parametrize("mode", ["api", "webhook"])
async def test_a_short_retry_after_is_waited_out_and_posts_once(
    settings: Settings, store: JobStore, sandbox: SlackSandbox, mode: str
) -> None:
    s = api_settings(settings, sandbox, slack_webhook_url=sandbox.webhook_url)
    sandbox.fail_next(ScriptedFailure(status=429, retry_after_s=1))
    started = time.monotonic()
    result = await (await notifier(s)).run(payload(mode=mode), context(s, store, f"job-sl-6{mode}"))
    assert time.monotonic() - started >= 1.0
    assert sandbox.requests == 2 and len(sandbox.messages) == 1 and not result.duplicate


async def test_a_long_retry_after_goes_back_to_the_queue(
    settings: Settings, store: JobStore, sandbox: SlackSandbox
) -> None:
    s = api_settings(settings, sandbox)
    task = await notifier(s)
    sandbox.fail_next(ScriptedFailure(status=429, retry_after_s=30))
    with pytest.raises(Retry, match="rate limited") as err:
        await task.run(payload(), context(s, store, "job-sl-7"))
    assert err.value.after_s == 30 and sandbox.requests == 1
    # Refused before posting: the next attempt may post.
    result = await task.run(payload(), context(s, store, "job-sl-7", attempt=2))
    assert not result.duplicate and len(sandbox.messages) == 1


@pytest.mark.parametrize(
    ("mode", "error"), [("api", "internal_error"), ("webhook", "rollup_error")]
)
async def test_a_500_is_retried(
    settings: Settings, store: JobStore, sandbox: SlackSandbox, mode: str, error: str
) -> None:
    s = api_settings(settings, sandbox, slack_webhook_url=sandbox.webhook_url)
    sandbox.fail_next(ScriptedFailure(status=500, error=error))
    with pytest.raises(Retry, match=error):
        await (await notifier(s)).run(payload(mode=mode), context(s, store, f"job-sl-8{mode}"))
    assert sandbox.messages == []


async def test_an_unreachable_slack_is_retried_without_leaking_the_webhook_url(
    settings: Settings, store: JobStore
) -> None:
    url = f"http://127.0.0.1:{free_port()}{throwaway_webhook_path()}"
    s = Settings.model_validate({**settings.model_dump(), "slack_webhook_url": url})
    with pytest.raises(Retry, match="unreachable") as err:
        await (await notifier(s)).run(payload(), context(s, store, "job-sl-9"))
    assert_no_secret(err.value, s)


# -- permanent refusals --------------------------------------------------------------------


async def test_an_unknown_channel_is_not_retried(
    settings: Settings, store: JobStore, sandbox: SlackSandbox
) -> None:
    s = api_settings(settings, sandbox)
    with pytest.raises(NonRetryable, match="channel_not_found"):
        await (await notifier(s)).run(payload(channel="#nowhere"), context(s, store, "job-sl-10"))


async def test_a_wrong_token_is_not_retried_and_never_shown(
    settings: Settings, store: JobStore, sandbox: SlackSandbox
) -> None:
    s = api_settings(settings, sandbox, slack_bot_token=throwaway_token())
    with pytest.raises(NonRetryable, match="invalid_auth") as err:
        await (await notifier(s)).run(payload(), context(s, store, "job-sl-11"))
    assert_no_secret(err.value, s)


async def test_a_revoked_webhook_is_not_retried_and_its_url_never_shown(
    settings: Settings, store: JobStore, sandbox: SlackSandbox
) -> None:
    s = webhook_settings(
        settings, sandbox, slack_webhook_url=f"{sandbox.url}{throwaway_webhook_path()}"
    )
    with pytest.raises(NonRetryable, match="no_service") as err:
        await (await notifier(s)).run(payload(), context(s, store, "job-sl-12"))
    assert_no_secret(err.value, s)


# -- lost answers: at most once ------------------------------------------------------------


async def test_a_lost_answer_is_outcome_unknown_and_never_resent(
    settings: Settings, store: JobStore, sandbox: SlackSandbox
) -> None:
    s = webhook_settings(settings, sandbox)
    task = await notifier(s)
    sandbox.fail_next(ScriptedFailure(drop=True))
    with pytest.raises(OutcomeUnknown) as err:
        await task.run(payload(), context(s, store, "job-sl-13"))
    assert_no_secret(err.value, s)
    with pytest.raises(NonRetryable, match="at most once"):
        await task.run(payload(), context(s, store, "job-sl-13", attempt=2))
    assert len(sandbox.messages) == 1  # Slack did post it, once


async def test_a_timeout_after_sending_is_outcome_unknown(
    settings: Settings, store: JobStore, sandbox: SlackSandbox
) -> None:
    s = api_settings(settings, sandbox, slack_timeout_s=0.3)
    sandbox.fail_next(ScriptedFailure(status=200, error="never_seen", delay_s=1.0))
    with pytest.raises(OutcomeUnknown, match="may have been posted"):
        await (await notifier(s)).run(payload(), context(s, store, "job-sl-14"))


# -- settings and payloads -----------------------------------------------------------------


async def test_api_mode_without_a_channel_fails_clearly(
    settings: Settings, store: JobStore, sandbox: SlackSandbox
) -> None:
    s = api_settings(settings, sandbox, slack_default_channel=None)
    with pytest.raises(NonRetryable, match="WORKERS_SLACK_DEFAULT_CHANNEL"):
        await (await notifier(s)).run(payload(), context(s, store, "job-sl-15"))
    assert sandbox.requests == 0


async def test_api_fields_without_a_bot_token_fail_clearly(
    settings: Settings, store: JobStore, sandbox: SlackSandbox
) -> None:
    s = webhook_settings(settings, sandbox)
    with pytest.raises(NonRetryable, match="channel need api mode"):
        await (await notifier(s)).run(payload(channel="#ops"), context(s, store, "job-sl-16"))
    assert sandbox.requests == 0


async def test_plain_http_is_refused_for_a_remote_slack(settings: Settings) -> None:
    path = throwaway_webhook_path()
    secret_url = f"http://hooks.example.com{path}"
    s = Settings.model_validate({**settings.model_dump(), "slack_webhook_url": secret_url})
    with pytest.raises(SlackConfigError, match="https") as err:
        await NotifySlack(s).setup()
    assert path.rsplit("/", 1)[-1] not in str(err.value)


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"webhook_url": "https://hooks.example.com/services/x"}, "credentials come only from"),
        ({"text": None}, "text or blocks is required"),
        ({"text": None, "blocks": [{"type": "divider"}]}, "blocks carry no text"),
        ({"blocks": [{"text": "no type"}]}, "needs a 'type'"),
        ({"blocks": [{"type": "divider"}] * 51}, "at most 50"),
        ({"reply_broadcast": True}, "needs thread_ts"),
        ({"thread_ts": "yesterday"}, "thread_ts"),
        ({"mode": "webhook", "channel": "#ops"}, "need mode 'api'"),
        ({"mode": "email"}, "mode"),
        ({"colour": "red"}, "Extra inputs"),
    ],
)
def test_bad_payloads_are_refused_clearly(bad: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        payload(**bad)


# -- health --------------------------------------------------------------------------------


async def test_health_checks_the_token_with_auth_test(
    settings: Settings, sandbox: SlackSandbox
) -> None:
    good = await (await notifier(api_settings(settings, sandbox))).health()
    revoked = throwaway_token()
    s = api_settings(settings, sandbox, slack_bot_token=revoked)
    bad = await (await notifier(s)).health()
    assert good.ok and good.checks == {"slack_api": "ok"}
    assert not bad.ok and "invalid_auth" in bad.checks["slack_api"]
    assert revoked not in str(bad.checks)


async def test_health_of_a_webhook_posts_nothing(settings: Settings, sandbox: SlackSandbox) -> None:
    health = await (await notifier(webhook_settings(settings, sandbox))).health()
    assert health.ok and health.checks == {"slack_webhook": "configured"}
    assert sandbox.requests == 0


async def test_health_without_slack_settings_says_what_to_set(settings: Settings) -> None:
    health = await (await notifier(settings)).health()
    assert not health.ok and "WORKERS_SLACK_BOT_TOKEN" in health.checks["slack"]
