"""RO e-Transport jobs (queue ``anaf.etransport``): submit a declaration, query its state.

``etransport.submit`` builds the v2 XML from a JSON declaration, validates it locally with
the XSD and the Schematron 2.0.2 (a failure names the rule and where, and nothing is
sent), uploads it at most once per shipment key (``workers_core.etransport.submission``),
records the UIT ANAF returns at once, then follows ``stareMesaj`` to ``ok`` — the UIT is
valid only from then — and returns it with its validity window.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workers_core.efactura.schemas import schemas_root
from workers_core.efactura.validate import ValidationIssue
from workers_core.errors import NonRetryable
from workers_core.etransport.document import build_xml
from workers_core.etransport.model import Declaration
from workers_core.etransport.submission import (
    DeclarationSubmitter,
    identify,
    valid_until,
    with_ref,
)
from workers_core.etransport.validate import validate
from workers_core.integrations.anaf.etransport import (
    DeclarationStatus,
    EtransportClient,
    State,
)
from workers_core.jobs.retry import RetryPolicy
from workers_core.jobs.side_effects import SideEffectLedger
from workers_core.tasks.anaf_spv import UPLOAD_RECORD_TTL_S, SpvTaskBase, cif_of
from workers_core.tasks.base import JobContext, Resources, Task

QUEUE = "anaf.etransport"


class SubmitPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    declaration: Declaration
    shipment_key: str = Field(
        min_length=1,
        max_length=200,
        description="Your id for this shipment: one declaration is uploaded per key.",
    )
    cif: str | None = Field(
        default=None, description="The uploading CIF (SPV rights); default: the declarant's."
    )
    wait: bool = Field(default=True, description="Follow stareMesaj to ok; false: return at once.")


class SubmitResult(BaseModel):
    shipment_key: str
    uit: str = Field(description="Valid only when state is ok.")
    upload_index: int = Field(description="ANAF's index_incarcare.")
    ref: str = Field(description="The refDeclarant sent (ours when none was given).")
    reused_upload: bool = Field(description="Uploaded by an earlier attempt or job; not again.")
    found_by_lookup: bool = Field(description="A lost upload answer, found in ANAF's list.")
    state: State | None = Field(description="ANAF's verdict; null when wait was false.")
    states_seen: list[str]
    valid_from: dt.date | None = Field(description="The declared transport date.")
    valid_until: dt.date | None = Field(description="5 days later (15 for AIC/DIN/LHI/SCI).")
    errors: list[str] = Field(description="ANAF's messages on nok.")
    warnings: list[ValidationIssue]
    xml_artifact_id: str


class StatusPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    upload_index: int = Field(gt=0)


class StatusResult(BaseModel):
    upload_index: int
    state: State
    errors: list[str]


class _EtransportTask(SpvTaskBase[EtransportClient]):
    def make_client(self, redis: Any) -> EtransportClient:
        return EtransportClient.from_settings(self.settings, redis)

    @functools.cached_property
    def submitter(self) -> DeclarationSubmitter:
        s = self.settings
        return DeclarationSubmitter(
            self.client(),
            SideEffectLedger(self.redis, s.redis_prefix, UPLOAD_RECORD_TTL_S),
            poll_first_s=s.etransport_poll_first_s,
            poll_max_interval_s=s.etransport_poll_max_interval_s,
            poll_in_job_s=s.etransport_poll_in_job_s,
            lookup_grace_s=s.etransport_lookup_grace_s,
            lookup_retry_s=s.etransport_lookup_retry_s,
        )


class SubmitDeclaration(_EtransportTask, Task[SubmitPayload, SubmitResult]):
    """Validate, upload at most once per shipment, follow to ok; the UIT and its window."""

    name = "etransport.submit"
    queue = QUEUE
    Payload = SubmitPayload
    Result = SubmitResult
    resources = Resources(num_cpus=0.25)
    concurrency = 4  # mostly waiting on ANAF
    time_limit_s = 1200.0  # > the polling time of one attempt + the upload
    retry = RetryPolicy(max_attempts=30, backoff_base_s=30, backoff_max_s=1800)

    async def run(self, payload: SubmitPayload, ctx: JobContext) -> SubmitResult:
        declaration = with_ref(payload.declaration, payload.shipment_key)
        xml = build_xml(declaration)
        report = await asyncio.to_thread(validate, xml, schemas_root(self.settings))
        if not report.ok:
            shown = "; ".join(f"{i.rule_id} at {i.location}: {i.text}" for i in report.errors[:10])
            raise NonRetryable(
                f"the declaration for shipment {payload.shipment_key!r} fails validation "
                f"({len(report.errors)} errors), nothing was sent to ANAF: {shown}"
            )
        shipment = identify(declaration, xml, payload.shipment_key)
        meta = await ctx.artifacts.put(xml, "application/xml", filename="etransport.xml")
        cif = cif_of(payload.cif or declaration.declarant_code)
        submitter = self.submitter
        upload = await submitter.upload_once(xml, shipment, cif, ctx.attempt)
        ctx.log.info(
            "etransport.uploaded", index=upload.index, uit=upload.uit, reused=upload.reused
        )
        n = declaration.notification
        result = SubmitResult(
            shipment_key=payload.shipment_key,
            uit=upload.uit,
            upload_index=upload.index,
            ref=shipment.ref,
            reused_upload=upload.reused,
            found_by_lookup=upload.found_by_lookup,
            state=None,
            states_seen=[],
            valid_from=n.transport.date if n is not None else None,
            valid_until=valid_until(declaration),
            errors=[],
            warnings=report.warnings,
            xml_artifact_id=meta.id,
        )
        if not payload.wait:
            return result

        async def seen(status: DeclarationStatus) -> None:
            if not result.states_seen or result.states_seen[-1] != status.state:
                result.states_seen.append(status.state)
                ctx.log.info("etransport.state", index=status.index, state=status.state)

        status = await submitter.poll(upload.index, seen)
        result.state, result.errors = status.state, status.errors
        if status.state != "ok":
            await submitter.release(shipment)  # the UIT never became valid
            shown = "; ".join(status.errors[:10]) or status.state
            raise NonRetryable(
                f"ANAF rejected the declaration for shipment {payload.shipment_key!r} "
                f"(index {upload.index}, UIT {upload.uit} not valid): {shown}"
            )
        return result


class DeclarationState(_EtransportTask, Task[StatusPayload, StatusResult]):
    """One stareMesaj query for an upload index."""

    name = "etransport.status"
    queue = QUEUE
    Payload = StatusPayload
    Result = StatusResult

    async def run(self, payload: StatusPayload, ctx: JobContext) -> StatusResult:
        status = await self.client().status(payload.upload_index)
        return StatusResult(upload_index=status.index, state=status.state, errors=status.errors)


TASKS = [SubmitDeclaration, DeclarationState]
