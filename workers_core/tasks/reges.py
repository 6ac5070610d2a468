"""REGES-ONLINE jobs (queue ``reges``): send an employee or contract message, query it.

``reges.submit`` builds the ``reges2025`` XML from JSON (or takes a ready XML message),
validates it with the XSD (a failure names the error and where, and nothing is sent),
sends it at most once per ``MessageId`` (``workers_core.reges.submission``), records the
receipt at once, then waits for REGES's result and returns its ``Ref`` ids.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from typing import Any, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workers_core.efactura.schemas import schemas_root
from workers_core.errors import NonRetryable
from workers_core.integrations.reges import MessageResult, RegesClient
from workers_core.jobs.retry import RetryPolicy
from workers_core.jobs.side_effects import SideEffectLedger
from workers_core.reges.document import Sender, build_xml
from workers_core.reges.model import RegesMessage
from workers_core.reges.results import RECORD_TTL_S, MessageStatus, ResultInbox, State
from workers_core.reges.submission import RegesSubmitter
from workers_core.reges.validate import MessageIdentity, validate
from workers_core.tasks.anaf_spv import SpvTaskBase
from workers_core.tasks.base import Health, JobContext, Task

QUEUE = "reges"


class SubmitPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: RegesMessage | None = Field(default=None, description="The message as JSON.")
    xml: str | None = Field(
        default=None, min_length=1, description="Or a ready reges2025 <Message> (validated too)."
    )
    wait: bool = Field(default=True, description="Wait for REGES's result; false: the receipt.")

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if (self.message is None) == (self.xml is None):
            raise ValueError("give exactly one of message (JSON) and xml")
        return self


class SubmitResult(BaseModel):
    message_id: UUID
    operation: str
    receipt_id: UUID = Field(description="REGES's ResponseId: the proof it queued the message.")
    state: State
    refs: list[UUID] = Field(description="Result Ref ids: the contract/employee (history) ids.")
    sec_refs: list[UUID]
    results: list[MessageResult]
    reused_send: bool = Field(description="Sent by an earlier attempt or job; not again.")
    found_by_lookup: bool = Field(description="A lost send answer, found in the result queue.")
    xml_artifact_id: str


class StatusPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: UUID | None = None
    receipt_id: UUID | None = None

    @model_validator(mode="after")
    def _one_id(self) -> Self:
        if self.message_id is None and self.receipt_id is None:
            raise ValueError("give message_id or receipt_id")
        return self


class _RegesTask(SpvTaskBase[RegesClient]):
    """Mixed in before ``Task``: Redis and one REGES client per replica, made on first use
    (``SpvTaskBase``), so a platform without REGES credentials still starts and its jobs say
    what to set."""

    def make_client(self, redis: Any) -> RegesClient:
        return RegesClient.from_settings(self.settings)

    @functools.cached_property
    def submitter(self) -> RegesSubmitter:
        s = self.settings
        return RegesSubmitter(
            self.client(),
            SideEffectLedger(self.redis, s.redis_prefix, RECORD_TTL_S),
            ResultInbox(self.redis, s.redis_prefix, lock_ttl_s=2 * s.reges_timeout_s + 10),
            poll_first_s=s.reges_poll_first_s,
            poll_max_interval_s=s.reges_poll_max_interval_s,
            poll_in_job_s=s.reges_poll_in_job_s,
            lookup_grace_s=s.reges_lookup_grace_s,
            lookup_retry_s=s.reges_lookup_retry_s,
        )

    async def health(self) -> Health:
        """REGES's token endpoint answers (5 s), and Redis."""
        reachable = await self.client().token_endpoint_answers()
        checks = {"reges": "reachable" if reachable else "token endpoint unreachable"}
        try:
            await self.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        return Health(ok=reachable and checks["redis"] == "ok", checks=checks)


def _refused(status: MessageStatus, identity: MessageIdentity) -> NonRetryable:
    shown = "; ".join(r.description or r.code_type for r in status.results[-5:])
    return NonRetryable(
        f"REGES refused {identity.operation} message {identity.message_id} "
        f"(receipt {status.receipt_id}): {shown}; fix it and send it under a new MessageId"
    )


class SubmitMessage(_RegesTask, Task[SubmitPayload, SubmitResult]):
    """Validate, send at most once per MessageId, wait for the result; its Ref ids."""

    name = "reges.submit"
    queue = QUEUE
    Payload = SubmitPayload
    Result = SubmitResult
    time_limit_s = 1200.0  # > one attempt's polling + the send
    retry = RetryPolicy(max_attempts=60, backoff_base_s=30, backoff_max_s=1800)

    def _xml(self, payload: SubmitPayload) -> tuple[bytes, str]:
        """The XML to send and the fingerprint of what the caller asked for."""
        if payload.message is not None:
            s = self.settings
            sender = Sender(author_id=UUID(s.reges_author_id) if s.reges_author_id else None)
            canonical = payload.message.model_dump_json().encode()
            return build_xml(payload.message, sender), hashlib.sha256(canonical).hexdigest()
        xml = (payload.xml or "").encode()
        return xml, hashlib.sha256(xml).hexdigest()

    async def run(self, payload: SubmitPayload, ctx: JobContext) -> SubmitResult:
        xml, fingerprint = self._xml(payload)
        report = await asyncio.to_thread(validate, xml, schemas_root(self.settings))
        if not report.ok or report.message is None:
            shown = "; ".join(f"{i.location}: {i.text}" for i in report.errors[:10])
            raise NonRetryable(
                f"the REGES message fails reges.xsd ({len(report.errors)} errors), nothing "
                f"was sent: {shown or 'no readable Header (MessageId, Operation)'}"
            )
        identity = report.message
        meta = await ctx.artifacts.put(xml, "application/xml", filename="reges.xml")
        sent = await self.submitter.send_once(xml, identity, fingerprint, ctx.attempt)
        ctx.log.info("reges.sent", message_id=str(identity.message_id),
                     receipt_id=str(sent.receipt_id), reused=sent.reused)
        if payload.wait:
            status = await self.submitter.await_result(identity.message_id, sent.receipt_id)
        else:
            status = await self.submitter.current(identity.message_id, sent.receipt_id)
        if status.state == "failed":
            raise _refused(status, identity)
        return SubmitResult(
            message_id=identity.message_id,
            operation=identity.operation,
            receipt_id=sent.receipt_id,
            state=status.state,
            refs=status.refs,
            sec_refs=status.sec_refs,
            results=status.results,
            reused_send=sent.reused,
            found_by_lookup=sent.found_by_lookup,
            xml_artifact_id=meta.id,
        )


class MessageState(_RegesTask, Task[StatusPayload, MessageStatus]):
    """Where a message stands (by message id or receipt id), after draining the queue."""

    name = "reges.status"
    queue = QUEUE
    Payload = StatusPayload
    Result = MessageStatus

    async def run(self, payload: StatusPayload, ctx: JobContext) -> MessageStatus:
        inbox = self.submitter.inbox
        if payload.message_id is not None:
            final = await inbox.final_of(payload.message_id)
            if final is not None:
                return final
        receipt = payload.receipt_id
        if receipt is None and payload.message_id is not None:
            await inbox.drain(self.client())  # results name their message: it may be there
            receipt = await inbox.receipt_of(payload.message_id)
        if receipt is None:
            return MessageStatus(message_id=payload.message_id)
        return await self.submitter.current(payload.message_id, receipt)


TASKS = [SubmitMessage, MessageState]
