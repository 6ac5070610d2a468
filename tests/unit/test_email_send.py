"""email.send against a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import email
from email import policy

import pytest

from tests.conftest import SmtpServer
from workers_core.artifacts import artifact_store_from_settings
from workers_core.config import Settings
from workers_core.errors import NonRetryable, Retry
from workers_core.integrations.smtp import SmtpConfigError
from workers_core.jobs.side_effects import SideEffectLedger
from workers_core.jobs.store import JobStore
from workers_core.tasks.base import JobContext
from workers_core.tasks.email import EmailPayload, SendEmail


def smtp_settings(settings: Settings, smtp: SmtpServer, **changes: object) -> Settings:
    return Settings.model_validate({
        **settings.model_dump(), "smtp_host": smtp.host, "smtp_port": smtp.port,
        "smtp_tls": "none", "smtp_username": smtp.username, "smtp_password": smtp.password,
        "smtp_from": "facturi@firma.ro", **changes})


def context(s: Settings, store: JobStore, job_id: str, attempt: int = 1) -> JobContext:
    return JobContext(job_id=job_id, task="email.send", queue="email.send", attempt=attempt,
                      max_attempts=5, correlation_id=None, settings=s,
                      artifacts=artifact_store_from_settings(s),
                      side_effects=SideEffectLedger(store.redis, s.redis_prefix, 3600))


def payload(**kw: object) -> EmailPayload:
    base = {"to": ["contabil@client.ro"], "subject": "Factura FCT-153", "text": "Bună ziua!"}
    return EmailPayload.model_validate({**base, **kw})


async def sender(s: Settings) -> SendEmail:
    task = SendEmail(s)
    await task.setup()
    return task


async def test_delivers_with_an_attachment_and_bcc_only_on_the_envelope(
    settings: Settings, store: JobStore, smtp_server: SmtpServer
) -> None:
    s = smtp_settings(settings, smtp_server)
    ctx = context(s, store, "job-mail-1")
    art = await ctx.artifacts.put(b"%PDF-1.7 fake", "application/pdf", filename="factură-153.pdf")
    before = len(smtp_server.capture.envelopes)
    result = await (await sender(s)).run(
        payload(bcc=["arhiva@firma.ro"], attachments=[{"artifact_id": art.id}]), ctx)
    assert result.message_id == "<job-mail-1@firma.ro>" and result.recipients == 2
    [envelope] = smtp_server.capture.envelopes[before:]
    assert envelope.rcpt_tos == ["contabil@client.ro", "arhiva@firma.ro"]
    msg = email.message_from_bytes(envelope.content, policy=policy.default)
    assert msg["Bcc"] is None and msg["Message-ID"] == "<job-mail-1@firma.ro>"
    [att] = list(msg.iter_attachments())
    assert att.get_filename() == "factură-153.pdf" and att.get_content() == b"%PDF-1.7 fake"
    assert msg.get_body(("plain",)).get_content().strip() == "Bună ziua!"


async def test_a_replayed_job_sends_once(settings: Settings, store: JobStore,
                                         smtp_server: SmtpServer) -> None:
    s = smtp_settings(settings, smtp_server)
    task = await sender(s)
    before = len(smtp_server.capture.envelopes)
    first = await task.run(payload(), context(s, store, "job-mail-2", attempt=1))
    again = await task.run(payload(), context(s, store, "job-mail-2", attempt=2))
    assert len(smtp_server.capture.envelopes) - before == 1
    assert again.duplicate and again.message_id == first.message_id


async def test_authentication_failure_is_not_retried(settings: Settings, store: JobStore,
                                                     smtp_server: SmtpServer) -> None:
    s = smtp_settings(settings, smtp_server, smtp_password="wrong")
    with pytest.raises(NonRetryable, match="authentication failed"):
        await (await sender(s)).run(payload(), context(s, store, "job-mail-3"))


async def test_a_4xx_reply_is_retried_and_can_be_sent_later(
    settings: Settings, store: JobStore, smtp_server: SmtpServer
) -> None:
    s = smtp_settings(settings, smtp_server)
    task = await sender(s)
    with pytest.raises(Retry, match="deferred"):
        await task.run(payload(to=["defer@client.ro"]), context(s, store, "job-mail-4"))
    # Refused before DATA: nothing was sent, so the next attempt may send.
    result = await task.run(payload(), context(s, store, "job-mail-4", attempt=2))
    assert not result.duplicate


async def test_a_5xx_reply_is_permanent(settings: Settings, store: JobStore,
                                        smtp_server: SmtpServer) -> None:
    s = smtp_settings(settings, smtp_server)
    with pytest.raises(NonRetryable, match="550"):
        await (await sender(s)).run(payload(to=["reject@client.ro"]),
                                    context(s, store, "job-mail-5"))


async def test_an_attempt_lost_mid_send_is_never_resent(
    settings: Settings, store: JobStore, smtp_server: SmtpServer
) -> None:
    s = smtp_settings(settings, smtp_server)
    ctx = context(s, store, "job-mail-6", attempt=1)
    await ctx.side_effects.claim("email:job-mail-6", 1)  # attempt 1 died after claiming
    before = len(smtp_server.capture.envelopes)
    with pytest.raises(NonRetryable, match="at most once"):
        await (await sender(s)).run(payload(), context(s, store, "job-mail-6", attempt=2))
    assert len(smtp_server.capture.envelopes) == before


async def test_plaintext_smtp_is_refused_for_a_remote_relay(settings: Settings) -> None:
    s = Settings.model_validate({**settings.model_dump(), "smtp_host": "smtp.example.com",
                                 "smtp_tls": "none"})
    with pytest.raises(SmtpConfigError, match="loopback"):
        await SendEmail(s).setup()


@pytest.mark.parametrize("bad", [
    {"headers": {"X-Evil": "a\r\nBcc: x@y.z"}},
    {"headers": {"From": "boss@firma.ro"}},
    {"subject": "two\nlines"},
    {"to": ["not-an-address"]},
])
def test_header_injection_and_bad_addresses_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        payload(**bad)
