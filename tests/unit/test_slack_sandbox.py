"""The Slack sandbox speaks Slack's documented protocol (plain HTTP, no slack_sdk)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from workers_core.sandbox.slack import ScriptedFailure, SlackSandbox, throwaway_token


@pytest.fixture
def slack() -> Iterator[SlackSandbox]:
    with SlackSandbox() as sandbox:
        yield sandbox


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_message(slack: SlackSandbox, token: str | None = None, **args: Any) -> httpx.Response:
    headers = bearer(token or slack.token) if token != "" else {}
    return httpx.post(f"{slack.api_url}chat.postMessage", json=args, headers=headers)


def test_a_webhook_answers_ok_as_text_and_records_the_message(slack: SlackSandbox) -> None:
    r = httpx.post(slack.webhook_url, json={"text": "hello"})
    assert (r.status_code, r.text) == (200, "ok")
    assert r.headers["content-type"].startswith("text/plain")
    [message] = slack.messages
    assert message["text"] == "hello" and message["via"] == "webhook"


@pytest.mark.parametrize(
    ("path", "body", "status", "word"),
    [
        ("/services/T0/B0/wrong", {"text": "x"}, 404, "no_service"),
        (None, "not json", 400, "invalid_payload"),
        (None, {"username": "bot"}, 400, "no_text"),
        (None, {"text": "x", "blocks": [{"type": "divider"}] * 51}, 400, "invalid_blocks"),
    ],
)
def test_webhook_errors_are_a_status_and_a_word(
    slack: SlackSandbox, path: str | None, body: Any, status: int, word: str
) -> None:
    url = f"{slack.url}{path}" if path else slack.webhook_url
    content = body if isinstance(body, str) else None
    r = httpx.post(
        url,
        json=None if content else body,
        content=content,
        headers={"Content-Type": "application/json"},
    )
    assert (r.status_code, r.text) == (status, word)
    assert slack.messages == []


def test_post_message_answers_json_with_the_channel_id_and_ts(slack: SlackSandbox) -> None:
    r = post_message(slack, channel="#ops", text="hello", thread_ts="1.000001")
    body = r.json()
    assert r.status_code == 200 and body["ok"] is True and body["channel"] == "C0OPS"
    assert body["message"]["text"] == "hello" and body["message"]["ts"] == body["ts"]
    assert slack.messages[0]["thread_ts"] == "1.000001"
    second = post_message(slack, channel="C0OPS", text="again").json()
    assert float(second["ts"]) > float(body["ts"])


@pytest.mark.parametrize(
    ("token", "args", "error"),
    [
        ("", {"channel": "C0OPS", "text": "x"}, "not_authed"),
        (throwaway_token(), {"channel": "C0OPS", "text": "x"}, "invalid_auth"),
        (None, {"channel": "#nowhere", "text": "x"}, "channel_not_found"),
        (None, {"channel": "#arhiva", "text": "x"}, "is_archived"),
        (None, {"channel": "C0OPS"}, "no_text"),
        (None, {"channel": "C0OPS", "text": "x" * 40_001}, "msg_too_long"),
        (None, {"channel": "C0OPS", "text": "x", "blocks": [{"no": "type"}]}, "invalid_blocks"),
    ],
)
def test_web_api_errors_are_ok_false_with_http_200(
    slack: SlackSandbox, token: str | None, args: dict[str, Any], error: str
) -> None:
    r = post_message(slack, token, **args)
    assert (r.status_code, r.json()) == (200, {"ok": False, "error": error})
    assert slack.messages == []


def test_form_arguments_and_a_token_argument_are_accepted(slack: SlackSandbox) -> None:
    r = httpx.post(
        f"{slack.api_url}chat.postMessage",
        data={
            "token": slack.token,
            "channel": "C0OPS",
            "text": "form",
            "blocks": '[{"type": "divider"}]',
        },
    )
    assert r.json()["ok"] is True
    [message] = slack.messages
    assert message["blocks"] == [{"type": "divider"}] and "token" not in message


def test_auth_test_names_the_team_and_bot(slack: SlackSandbox) -> None:
    r = httpx.post(f"{slack.api_url}auth.test?pretty=1", headers=bearer(slack.token))
    assert r.json()["ok"] is True and r.json()["bot_id"] == "B000SANDBOX"
    assert httpx.post(f"{slack.api_url}auth.test").json()["error"] == "not_authed"


def test_a_scripted_rate_limit_answers_429_with_retry_after(slack: SlackSandbox) -> None:
    slack.fail_next(ScriptedFailure(status=429, retry_after_s=7))
    r = post_message(slack, channel="C0OPS", text="x")
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert r.json() == {"ok": False, "error": "ratelimited"}
    assert post_message(slack, channel="C0OPS", text="x").json()["ok"] is True  # once only


def test_failures_apply_only_to_requests_that_would_succeed(slack: SlackSandbox) -> None:
    slack.fail_next(ScriptedFailure(status=500, error="rollup_error"))
    assert httpx.post(slack.webhook_url, json={}).text == "no_text"
    r = httpx.post(slack.webhook_url, json={"text": "x"})
    assert (r.status_code, r.text) == (500, "rollup_error")


def test_a_dropped_answer_still_posts_the_message(slack: SlackSandbox) -> None:
    slack.fail_next(ScriptedFailure(drop=True))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(slack.webhook_url, json={"text": "lost answer"})
    assert [m["text"] for m in slack.messages] == ["lost answer"]


def test_control_endpoints_script_and_reset(slack: SlackSandbox) -> None:
    httpx.post(
        f"{slack.url}/_sandbox/fail_next",
        json={"failures": [{"status": 403, "error": "action_prohibited"}]},
    )
    r = httpx.post(slack.webhook_url, json={"text": "x"})
    assert (r.status_code, r.text) == (403, "action_prohibited")
    httpx.post(slack.webhook_url, json={"text": "kept"})
    seen = httpx.get(f"{slack.url}/_sandbox/messages").json()
    assert [m["text"] for m in seen["messages"]] == ["kept"] and seen["requests"] == 2
    httpx.post(f"{slack.url}/_sandbox/reset")
    assert slack.messages == [] and slack.requests == 0
