"""Sending one REGES message at most once per ``MessageId`` and following it to its result.

1. The message id is claimed in the side-effect ledger BEFORE sending; the receipt
   (``ResponseId``) is recorded the moment REGES answers. A retry or a replayed job that
   finds it never sends again: it resumes waiting for the result.
2. A send whose answer was lost leaves the claim ``started``. The next attempt looks for
   the message's result in the queue (results carry the original header, so its
   ``MessageId``) instead of sending; only after ``lookup_grace_s`` without one does it
   conclude REGES never queued it and send again.
3. Results are waited for with doubling pauses; when one attempt's time is up the job
   hands back (``Retry``) and a later attempt resumes from the recorded receipt.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel

from workers_core.integrations.reges import RegesClient
from workers_core.jobs.polling import PollPolicy, poll_until_final
from workers_core.jobs.side_effects import (
    LostAnswerLookup,
    Reuse,
    SideEffectLedger,
    at_most_once_or_found,
)
from workers_core.reges.results import MessageStatus, ResultInbox
from workers_core.reges.validate import MessageIdentity


class SendOutcome(BaseModel):
    receipt_id: UUID
    reused: bool
    found_by_lookup: bool = False


class RegesSubmitter:
    """The flow above, over a ``RegesClient``, the ledger and the result inbox."""

    def __init__(
        self,
        client: RegesClient,
        ledger: SideEffectLedger,
        inbox: ResultInbox,
        *,
        poll_first_s: float,
        poll_max_interval_s: float,
        poll_in_job_s: float,
        lookup_grace_s: float,
        lookup_retry_s: float,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.inbox = inbox
        self.polling = PollPolicy(poll_first_s, poll_max_interval_s, poll_in_job_s)
        self.lookup_grace_s = lookup_grace_s
        self.lookup_retry_s = lookup_retry_s

    async def send_once(
        self, xml: bytes, message: MessageIdentity, fingerprint: str, attempt: int
    ) -> SendOutcome:
        label = f"REGES {message.operation} message {message.message_id}"

        async def send() -> dict[str, Any]:
            receipt = await self.client.submit(message.kind, xml)
            await self.inbox.record_receipt(message.message_id, receipt.receipt_id)
            return {"receipt_id": str(receipt.receipt_id)}

        async def find(since: float) -> dict[str, Any] | None:
            await self.inbox.drain(self.client)
            found = await self.inbox.receipt_of(message.message_id)
            return {"receipt_id": str(found)} if found is not None else None

        def conflict(outcome: dict[str, Any]) -> str:
            return (
                f"{label} was already sent (receipt {outcome.get('receipt_id')}) with other "
                "content; a MessageId names one message: send the change under a new one"
            )

        outcome, how = await at_most_once_or_found(
            self.ledger,
            f"reges:message:{message.message_id}",
            attempt,
            fingerprint=fingerprint,
            label=label,
            act=send,
            lookup=LostAnswerLookup(
                find, self.lookup_grace_s, self.lookup_retry_s,
                where="REGES's result queue", where_short="REGES's result queue",
            ),
            conflict=conflict,
            note={"operation": message.operation},
        )
        return SendOutcome(
            receipt_id=UUID(outcome["receipt_id"]),
            reused=how is not Reuse.NEW,
            found_by_lookup=how is Reuse.FOUND,
        )

    async def current(self, message_id: UUID | None, receipt_id: UUID) -> MessageStatus:
        """Drain the queue (if no one else is), then what is known of ``receipt_id``."""
        await self.inbox.drain(self.client)
        return await self.inbox.status(message_id, receipt_id)

    async def await_result(self, message_id: UUID, receipt_id: UUID) -> MessageStatus:
        """Poll until the result is final (saved against the message id), or ``Retry``."""
        status = await poll_until_final(
            lambda: self.current(message_id, receipt_id),
            self.polling,
            f"REGES has not processed message {message_id} (receipt {receipt_id}) yet; "
            "waiting for its result again later",
        )
        await self.inbox.save_final(status)
        return status
