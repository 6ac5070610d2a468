"""SMTP delivery (aiosmtplib) with SMTP replies translated into retryable or permanent errors.

RFC 5321: 4xx replies are transient (try again later), 5xx are permanent. A connection that
fails before the server accepted the message (DATA answered 250) certainly did not deliver.
"""

from __future__ import annotations

import socket
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from workers_core.config import Settings
from workers_core.errors import ConfigError, NonRetryable, OutcomeUnknown, Retry
from workers_core.integrations.netguard import is_loopback_host
from workers_core.observability import metrics


class SmtpConfigError(ConfigError):
    problem_type = "smtp-config"



class SmtpSender:
    """One relay from settings; ``send`` opens a session, delivers, closes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.smtp_tls == "none" and not is_loopback_host(settings.smtp_host):
            raise SmtpConfigError(
                f"WORKERS_SMTP_TLS=none is allowed only for a loopback relay, not "
                f"{settings.smtp_host!r}: use starttls or tls"
            )

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        default_port = {"tls": 465, "starttls": 587, "none": 25}[s.smtp_tls]
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port or default_port,
            use_tls=s.smtp_tls == "tls",
            start_tls=s.smtp_tls == "starttls",
            validate_certs=s.smtp_validate_certs,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            timeout=s.smtp_timeout_s,
            local_hostname=socket.getfqdn() if s.smtp_tls != "none" else "localhost",
        )

    async def send(self, message: EmailMessage) -> dict[str, str]:
        """Deliver; returns refused recipients. Raises ``Retry`` or ``NonRetryable``."""
        smtp = self._client()
        try:
            with metrics.external_call("smtp", "send"):
                try:
                    await smtp.connect()
                except aiosmtplib.SMTPAuthenticationError as exc:
                    raise NonRetryable(f"SMTP authentication failed ({exc.code})") from exc
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    raise Retry(f"SMTP relay unreachable: {type(exc).__name__}: {exc}") from exc
                refused = await self._send(smtp, message)
        finally:
            await self._quit(smtp)
        return {addr: f"{resp.code} {resp.message}" for addr, resp in refused.items()}

    @staticmethod
    async def _send(smtp: aiosmtplib.SMTP, message: EmailMessage) -> dict[str, Any]:
        try:
            refused, _ = await smtp.send_message(message)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise NonRetryable(f"SMTP authentication failed ({exc.code})") from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            if all(400 <= c < 500 for c in codes):
                raise Retry(f"SMTP recipients deferred: {codes}") from exc
            raise NonRetryable(
                "SMTP refused every recipient: "
                + ", ".join(f"{r.recipient} ({r.code} {r.message})" for r in exc.recipients)
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise Retry(f"SMTP temporary failure {exc.code}: {exc.message}") from exc
            raise NonRetryable(f"SMTP permanent failure {exc.code}: {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # The session broke mid-transaction: the relay may have accepted the message.
            raise OutcomeUnknown(
                f"SMTP session broke while sending ({type(exc).__name__}); delivery unknown"
            ) from exc
        return dict(refused)

    @staticmethod
    async def _quit(smtp: aiosmtplib.SMTP) -> None:
        # The message is accepted once DATA is answered; a failing QUIT changes nothing.
        if smtp.is_connected:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                smtp.close()

    async def noop(self) -> None:
        """Deep health: connect, (authenticate,) NOOP."""
        async with self._client() as smtp:
            await smtp.noop()
