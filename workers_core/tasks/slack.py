"""notify.slack: one message through the bot token or the incoming webhook, at most once per job."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from workers_core.errors import NonRetryable, WorkersError
from workers_core.integrations.slack import SlackMessage, SlackNotifier
from workers_core.jobs.retry import RetryPolicy
from workers_core.jobs.side_effects import at_most_once
from workers_core.tasks.base import Health, JobContext, Resources, Task

Mode = Literal["webhook", "api"]
API_ONLY_FIELDS = ("channel", "thread_ts", "reply_broadcast", "username", "icon_emoji")
SECRET_FIELDS = ("webhook_url", "token")
FALLBACK_TEXT_MAX_CHARS = 3_000  # a notification preview, not the message
WEBHOOK_LIMITS = "an incoming webhook posts to its own channel, as its app, and returns no ts"


def _block(block: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(block.get("type"), str):
        raise ValueError("every block needs a 'type' (Block Kit)")
    return block


Block = Annotated[dict[str, Any], AfterValidator(_block)]
# Slack message timestamps ("1712345678.123456") identify messages and threads.
MessageTs = Annotated[str, StringConstraints(pattern=r"^\d{1,12}\.\d{1,9}$")]


class SlackPayload(BaseModel):
    """One message. Credentials are never part of it: they come only from settings."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode | None = Field(
        default=None, description="Default: api when WORKERS_SLACK_BOT_TOKEN is set, else webhook."
    )
    text: str | None = Field(
        default=None,
        min_length=1,
        max_length=40_000,
        description="Message text; with blocks, what notifications show. Required unless "
        "the blocks carry text (then taken from them).",
    )
    blocks: list[Block] = Field(
        default_factory=list, max_length=50, description="Block Kit blocks (at most 50)."
    )
    channel: str | None = Field(
        default=None,
        min_length=1,
        max_length=80,
        pattern=r"^\S+$",
        description="api mode: channel ID or #name. Default: WORKERS_SLACK_DEFAULT_CHANNEL.",
    )
    thread_ts: MessageTs | None = Field(
        default=None, description="api mode: reply in this message's thread."
    )
    reply_broadcast: bool = Field(
        default=False, description="api mode: also show the reply in the channel."
    )
    unfurl_links: bool | None = None
    unfurl_media: bool | None = None
    username: str | None = Field(
        default=None,
        min_length=1,
        max_length=80,
        description="api mode, needs chat:write.customize.",
    )
    icon_emoji: str | None = Field(
        default=None, pattern=r"^:[\w+'-]+:$", description="api mode, needs chat:write.customize."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in SECRET_FIELDS:
                if key in data:
                    raise ValueError(
                        f"{key!r} is not accepted in a payload: Slack credentials come only "
                        "from settings (WORKERS_SLACK_WEBHOOK_URL, WORKERS_SLACK_BOT_TOKEN)"
                    )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SlackPayload:
        if self.reply_broadcast and not self.thread_ts:
            raise ValueError("reply_broadcast needs thread_ts")
        if self.mode == "webhook" and (used := self.api_only_fields()):
            raise ValueError(f"{', '.join(used)} need mode 'api': {WEBHOOK_LIMITS}")
        if self.text is None:
            if not self.blocks:
                raise ValueError("text or blocks is required")
            self.text = fallback_text(self.blocks)
            if not self.text:
                raise ValueError("text is required: the blocks carry no text for notifications")
        return self

    def api_only_fields(self) -> list[str]:
        """The fields an incoming webhook cannot honour."""
        return [f for f in API_ONLY_FIELDS if getattr(self, f) not in (None, False)]


def fallback_text(blocks: list[dict[str, Any]]) -> str:
    """Notification text from the blocks' own text (header, section and its fields, context):
    Slack shows ``text``, not blocks, in notifications and screen readers."""
    parts: list[str] = []
    for block in blocks:
        fields, elements = block.get("fields"), block.get("elements")
        for item in [
            block.get("text"),
            *(fields if isinstance(fields, list) else []),
            *(elements if isinstance(elements, list) else []),
        ]:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                parts.append(item["text"].strip())
    return "\n".join(p for p in parts if p)[:FALLBACK_TEXT_MAX_CHARS]


class SlackResult(BaseModel):
    """Where it went; ``ts`` lets a later job reply in its thread."""

    mode: Mode
    channel: str | None = Field(
        default=None, description="Channel ID (api mode); a webhook posts to its own channel."
    )
    ts: str | None = Field(
        default=None, description="The message's id (api mode): replies and updates use it."
    )
    posted_at: datetime
    duplicate: bool = Field(
        default=False, description="An earlier attempt posted it; nothing was posted again."
    )


class NotifySlack(Task[SlackPayload, SlackResult]):
    """Posts through WORKERS_SLACK_*; a retried job never posts twice."""

    name = "notify.slack"
    queue = "notify.slack"
    Payload = SlackPayload
    Result = SlackResult
    resources = Resources(num_cpus=0.1)
    concurrency = 8
    # Slack takes about one message per second per channel and per webhook (rate-limits
    # docs); one shared rate across replicas keeps bursts from ending in 429s.
    rate_limit = "1/s"
    # Above 3 requests x slack_timeout_s (30) + 2 short Retry-After waits: the time limit
    # must not cut a post off mid-request.
    time_limit_s = 120.0
    retry = RetryPolicy(max_attempts=5, backoff_base_s=2, backoff_max_s=300)

    async def setup(self) -> None:
        self.slack = SlackNotifier(self.settings)

    async def health(self) -> Health:
        """api: ``auth.test``; webhook: configured or not (a check must not post)."""
        checks: dict[str, str] = {}
        if self.settings.slack_bot_token is not None:
            try:
                await self.slack.auth_test()
                checks["slack_api"] = "ok"
            except WorkersError as exc:
                checks["slack_api"] = f"error: {exc.message}"
        if self.settings.slack_webhook_url is not None:
            checks["slack_webhook"] = "configured"
        if not checks:
            return Health(
                ok=False,
                checks={"slack": "error: set WORKERS_SLACK_BOT_TOKEN or WORKERS_SLACK_WEBHOOK_URL"},
            )
        return Health(ok=not any(v.startswith("error") for v in checks.values()), checks=checks)

    async def run(self, payload: SlackPayload, ctx: JobContext) -> SlackResult:
        mode, message = self._message(payload)

        async def post() -> dict[str, Any]:
            if mode == "api":
                posted = await self.slack.post_message(message)
            else:
                posted = await self.slack.post_webhook(message)
            return SlackResult(
                mode=mode, channel=posted.channel, ts=posted.ts, posted_at=datetime.now(UTC)
            ).model_dump(mode="json")

        outcome, duplicate = await at_most_once(
            ctx.side_effects, f"slack:{ctx.job_id}", ctx.attempt, post
        )
        return SlackResult.model_validate({**outcome, "duplicate": duplicate})

    def _message(self, p: SlackPayload) -> tuple[Mode, SlackMessage]:
        """The mode and what to send, settings applied; raises ``NonRetryable`` when the
        settings cannot serve the payload."""
        s = self.settings
        mode: Mode = p.mode or ("api" if s.slack_bot_token is not None else "webhook")
        text = p.text or ""  # the payload's validator fills it
        blocks = p.blocks or None
        if mode == "webhook":
            if s.slack_webhook_url is None:
                raise NonRetryable("webhook mode needs WORKERS_SLACK_WEBHOOK_URL")
            if used := p.api_only_fields():
                raise NonRetryable(
                    f"{', '.join(used)} need api mode (WORKERS_SLACK_BOT_TOKEN "
                    f"is not set): {WEBHOOK_LIMITS}"
                )
            return mode, SlackMessage(
                text=text, blocks=blocks, unfurl_links=p.unfurl_links, unfurl_media=p.unfurl_media
            )
        if s.slack_bot_token is None:
            raise NonRetryable("api mode needs WORKERS_SLACK_BOT_TOKEN")
        channel = p.channel or s.slack_default_channel
        if not channel:
            raise NonRetryable(
                "no channel: give one in the payload or set WORKERS_SLACK_DEFAULT_CHANNEL"
            )
        return mode, SlackMessage(
            text=text,
            blocks=blocks,
            channel=channel,
            thread_ts=p.thread_ts,
            reply_broadcast=p.reply_broadcast or None,
            unfurl_links=p.unfurl_links,
            unfurl_media=p.unfurl_media,
            username=p.username,
            icon_emoji=p.icon_emoji,
        )
