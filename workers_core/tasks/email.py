"""email.send: one message through the configured relay, at most once per job."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from workers_core.integrations.smtp import SmtpSender
from workers_core.jobs.retry import RetryPolicy
from workers_core.jobs.side_effects import at_most_once
from workers_core.tasks.base import Health, JobContext, Resources, Task

# Deliberately simple (RFC 5322 is not a regex): one @, no spaces or angle brackets.
EmailAddress = Annotated[str, StringConstraints(pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$",
                                                max_length=254)]
RESERVED_HEADERS = {"from", "to", "cc", "bcc", "subject", "message-id", "date", "reply-to",
                    "content-type", "content-transfer-encoding", "mime-version"}


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    artifact_id: str
    filename: str | None = Field(default=None, max_length=255)


class EmailPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    sender: EmailAddress | None = Field(default=None, alias="from",
                                        description="Default: WORKERS_SMTP_FROM.")
    to: list[EmailAddress] = Field(min_length=1, max_length=100)
    cc: list[EmailAddress] = Field(default_factory=list, max_length=100)
    bcc: list[EmailAddress] = Field(default_factory=list, max_length=100)
    reply_to: EmailAddress | None = None
    subject: str = Field(min_length=1, max_length=998)
    text: str | None = Field(default=None, max_length=1_000_000)
    html: str | None = Field(default=None, max_length=5_000_000)
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _safe_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", name):
                raise ValueError(f"header name {name!r} is not a plain token")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the platform")
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} contains a line break")
        return headers

    @field_validator("subject")
    @classmethod
    def _one_line(cls, subject: str) -> str:
        if "\r" in subject or "\n" in subject:
            raise ValueError("the subject must be one line")
        return subject


class EmailResult(BaseModel):
    message_id: str
    recipients: int
    refused: dict[str, str] = Field(default_factory=dict)
    sent_at: datetime
    duplicate: bool = Field(default=False,
                            description="An earlier attempt sent it; nothing was sent again.")


class SendEmail(Task[EmailPayload, EmailResult]):
    """Sends through WORKERS_SMTP_*; a retried job never sends twice."""

    name = "email.send"
    queue = "email.send"
    Payload = EmailPayload
    Result = EmailResult
    resources = Resources(num_cpus=0.1)
    concurrency = 8
    time_limit_s = 120.0
    retry = RetryPolicy(max_attempts=5, backoff_base_s=5, backoff_max_s=600)

    async def setup(self) -> None:
        self.sender = SmtpSender(self.settings)

    async def health(self) -> Health:
        try:
            await self.sender.noop()
        except Exception as exc:
            return Health(ok=False, checks={"smtp": f"error: {type(exc).__name__}: {exc}"})
        return Health(ok=True, checks={"smtp": "ok"})

    async def run(self, payload: EmailPayload, ctx: JobContext) -> EmailResult:
        domain = self.settings.smtp_from.rpartition("@")[2] or "workers-core"
        message_id = f"<{ctx.job_id}@{domain}>"  # the same on every attempt
        async def send() -> dict[str, Any]:
            message = await self._build(payload, message_id, ctx)
            refused = await self.sender.send(message)
            recipients = len(payload.to) + len(payload.cc) + len(payload.bcc)
            return EmailResult(message_id=message_id, recipients=recipients - len(refused),
                               refused=refused, sent_at=datetime.now(UTC)
                               ).model_dump(mode="json")

        outcome, duplicate = await at_most_once(
            ctx.side_effects, f"email:{ctx.job_id}", ctx.attempt, send)
        return EmailResult.model_validate({**outcome, "duplicate": duplicate})

    async def _build(self, p: EmailPayload, message_id: str, ctx: JobContext) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = p.sender or self.settings.smtp_from
        msg["To"] = ", ".join(p.to)
        if p.cc:
            msg["Cc"] = ", ".join(p.cc)
        if p.reply_to:
            msg["Reply-To"] = str(Address(addr_spec=p.reply_to))
        msg["Subject"] = p.subject
        msg["Message-ID"] = message_id
        msg["Date"] = datetime.now(UTC)
        for name, value in p.headers.items():
            msg[name] = value
        msg.set_content(p.text or "")
        if p.html:
            msg.add_alternative(p.html, subtype="html")
        for att in p.attachments:
            meta, data = await ctx.artifacts.get(att.artifact_id)
            maintype, _, subtype = meta.content_type.partition("/")
            msg.add_attachment(data, maintype=maintype or "application",
                               subtype=subtype or "octet-stream",
                               filename=att.filename or meta.filename or att.artifact_id)
        if p.bcc:  # envelope only: never in the headers
            msg["Bcc"] = ", ".join(p.bcc)
        return msg
