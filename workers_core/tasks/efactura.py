"""RO e-Factura jobs (queue ``anaf.efactura``): submit, status, download, inbox, PDF.

``efactura.submit`` builds (or takes) the UBL XML, validates it locally with the UBL XSD and
the CIUS-RO Schematron (a failure names the rule and where, and nothing is sent), uploads it
at most once per invoice (``workers_core.efactura.submission``), follows ``stareMesaj`` to
ANAF's verdict, and on ``ok`` stores ANAF's signed ZIP as an artifact after checking its
signature; on ``nok`` it returns ANAF's error list.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workers_core.artifacts import ArtifactId
from workers_core.efactura.archive import AnafError, SignatureCheck, load_certificates
from workers_core.efactura.model import Invoice
from workers_core.efactura.schemas import schemas_root
from workers_core.efactura.submission import (
    InvoiceIdentity,
    InvoiceSubmitter,
    UploadOptions,
    identify,
)
from workers_core.efactura.ubl import build_xml
from workers_core.efactura.validate import ValidationIssue, validate
from workers_core.errors import NonRetryable
from workers_core.integrations.anaf.efactura import (
    MAX_LIST_DAYS,
    EfacturaClient,
    MessageFilter,
    MessageStatus,
    SpvMessage,
    State,
)
from workers_core.jobs.retry import RetryPolicy
from workers_core.jobs.side_effects import SideEffectLedger
from workers_core.tasks.anaf_spv import UPLOAD_RECORD_TTL_S, SpvTaskBase, cif_of
from workers_core.tasks.base import JobContext, Resources, Task

QUEUE = "anaf.efactura"


class InvoiceInput(BaseModel):
    """Exactly one of a JSON invoice (built to CIUS-RO UBL) or ready XML (an artifact)."""

    model_config = ConfigDict(extra="forbid")

    invoice: Invoice | None = Field(default=None, description="Built to UBL 2.1 CIUS-RO XML.")
    xml_artifact_id: ArtifactId | None = Field(
        default=None, description="Ready UBL Invoice/CreditNote XML, uploaded as an artifact."
    )

    @model_validator(mode="after")
    def _one_source(self) -> InvoiceInput:
        if (self.invoice is None) == (self.xml_artifact_id is None):
            raise ValueError("give exactly one of invoice, xml_artifact_id")
        return self


class SubmitPayload(InvoiceInput):
    cif: str | None = Field(
        default=None, description="The uploading CIF (SPV rights); default: the seller's."
    )
    extern: bool = Field(default=False, description="Buyer outside Romania (extern=DA).")
    self_billed: bool = Field(default=False, description="Self-billing (autofactura=DA).")
    enforcement: bool = Field(default=False, description="Filed by an enforcement body.")
    b2c: bool = Field(default=False, description="A B2C invoice (uploadb2c).")
    wait: bool = Field(
        default=True, description="Follow stareMesaj to ANAF's verdict; false: return the index."
    )
    fail_on_nok: bool = Field(
        default=False, description="Fail the job when ANAF rejects the invoice (stops chains)."
    )


class SubmitResult(BaseModel):
    invoice_number: str
    issue_date: dt.date
    seller_cif: int
    upload_index: int = Field(description="ANAF's index_incarcare.")
    reused_upload: bool = Field(
        description="Uploaded by an earlier attempt or job with the same invoice; not again."
    )
    found_by_lookup: bool = Field(
        description="An earlier upload whose answer was lost, found in the SPV message list."
    )
    xml_artifact_id: str = Field(description="The XML that was uploaded.")
    state: State | None = Field(description="ANAF's verdict; null when wait was false.")
    states_seen: list[str]
    download_id: int | None
    zip_artifact_id: str | None = Field(description="ANAF's signed ZIP (on ok or nok).")
    signature: SignatureCheck | None
    errors: list[AnafError] = Field(description="ANAF's error list on nok.")
    warnings: list[ValidationIssue] = Field(description="Local validation warnings.")


class StatusPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    upload_index: int = Field(gt=0)


class StatusResult(BaseModel):
    upload_index: int
    state: State
    download_id: int | None


class DownloadPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    download_id: int = Field(gt=0)


class DownloadResult(BaseModel):
    download_id: int
    zip_artifact_id: str
    document_artifact_id: str
    document_name: str
    is_error_list: bool
    errors: list[AnafError]
    signature: SignatureCheck


class InboxPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cif: str = Field(description="Whose SPV messages (with or without RO).")
    days: int = Field(default=7, ge=1, le=MAX_LIST_DAYS)
    filter: MessageFilter | None = Field(
        default=None, description="E errors, T sent, P received, R buyer messages."
    )


class InboxResult(BaseModel):
    cif: int
    messages: list[SpvMessage]


class PdfPayload(InvoiceInput):
    validate_first: bool = Field(
        default=True, description="false: ANAF renders without validating (/DA)."
    )


class PdfResult(BaseModel):
    pdf_artifact_id: str
    size: int


class _EfacturaTask(SpvTaskBase[EfacturaClient]):
    def make_client(self, redis: Any) -> EfacturaClient:
        return EfacturaClient.from_settings(self.settings, redis)

    @functools.cached_property
    def submitter(self) -> InvoiceSubmitter:
        """One per replica: the pinned certificates are read once, not per job."""
        s = self.settings
        return InvoiceSubmitter(
            self.client(),
            SideEffectLedger(self.redis, s.redis_prefix, UPLOAD_RECORD_TTL_S),
            poll_first_s=s.efactura_poll_first_s,
            poll_max_interval_s=s.efactura_poll_max_interval_s,
            poll_in_job_s=s.efactura_poll_in_job_s,
            lookup_grace_s=s.efactura_lookup_grace_s,
            lookup_retry_s=s.efactura_lookup_retry_s,
            pinned=load_certificates(s.anaf_signature_certs),
        )

    async def invoice_xml(self, source: InvoiceInput, ctx: JobContext) -> bytes:
        if source.invoice is not None:
            return build_xml(source.invoice)
        assert source.xml_artifact_id is not None
        _, data = await ctx.artifacts.get(source.xml_artifact_id)
        return bytes(data)


class SubmitInvoice(_EfacturaTask, Task[SubmitPayload, SubmitResult]):
    """Validate, upload at most once, follow to ANAF's verdict, keep the signed ZIP."""

    name = "efactura.submit"
    queue = QUEUE
    Payload = SubmitPayload
    Result = SubmitResult
    resources = Resources(num_cpus=0.25)
    concurrency = 4  # mostly waiting on ANAF
    time_limit_s = 1200.0  # > efactura_poll_in_job_s (600 s by default) + the upload
    # Polling hands back with Retry; each hand-back is an attempt.
    retry = RetryPolicy(max_attempts=30, backoff_base_s=30, backoff_max_s=1800)

    async def run(self, payload: SubmitPayload, ctx: JobContext) -> SubmitResult:
        xml = await self.invoice_xml(payload, ctx)
        invoice = identify(xml)
        report = await asyncio.to_thread(validate, xml, schemas_root(self.settings))
        if not report.ok:
            shown = "; ".join(f"{i.rule_id} at {i.location}: {i.text}" for i in report.errors[:10])
            raise NonRetryable(
                f"{invoice.label()} fails validation ({len(report.errors)} errors), "
                f"nothing was sent to ANAF: {shown}"
            )
        xml_meta = await ctx.artifacts.put(
            xml, "application/xml", filename=f"{_safe(invoice.number)}.xml"
        )
        cif = cif_of(payload.cif) if payload.cif else invoice.seller_cif
        submitter = self.submitter
        options = UploadOptions(
            cif=cif,
            extern=payload.extern,
            self_billed=payload.self_billed,
            enforcement=payload.enforcement,
            b2c=payload.b2c,
        )
        upload = await submitter.upload_once(xml, invoice, options, ctx.attempt)
        ctx.log.info(
            "efactura.uploaded",
            index=upload.index,
            reused=upload.reused,
            found_by_lookup=upload.found_by_lookup,
        )
        result = SubmitResult(
            invoice_number=invoice.number,
            issue_date=invoice.issue_date,
            seller_cif=invoice.seller_cif,
            upload_index=upload.index,
            reused_upload=upload.reused,
            found_by_lookup=upload.found_by_lookup,
            xml_artifact_id=xml_meta.id,
            state=None,
            states_seen=[],
            download_id=None,
            zip_artifact_id=None,
            signature=None,
            errors=[],
            warnings=report.warnings,
        )
        if not payload.wait:
            return result
        return await self._follow(result, invoice, submitter, payload, ctx)

    async def _follow(
        self,
        result: SubmitResult,
        invoice: InvoiceIdentity,
        submitter: InvoiceSubmitter,
        payload: SubmitPayload,
        ctx: JobContext,
    ) -> SubmitResult:
        async def seen(status: MessageStatus) -> None:
            if not result.states_seen or result.states_seen[-1] != status.state:
                result.states_seen.append(status.state)
                ctx.log.info("efactura.state", index=status.index, state=status.state)

        status = await submitter.poll(result.upload_index, seen)
        result.state, result.download_id = status.state, status.download_id
        if status.state != "ok":
            await submitter.release(invoice)  # not registered: a corrected one may follow
        if status.download_id is not None:
            archive = await submitter.fetch(status.download_id)
            zip_meta = await ctx.artifacts.put(
                archive.raw, "application/zip", filename=f"{result.upload_index}.zip"
            )
            result.zip_artifact_id = zip_meta.id
            result.signature = archive.signature
            result.errors = archive.errors
        if status.state != "ok" and payload.fail_on_nok:
            shown = "; ".join(e.message for e in result.errors[:10]) or status.state
            raise NonRetryable(
                f"ANAF rejected {invoice.label()} (index {result.upload_index}): {shown}"
            )
        return result


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:100] or "invoice"


class InvoiceStatus(_EfacturaTask, Task[StatusPayload, StatusResult]):
    """One stareMesaj query (counted against the message's 100 a day)."""

    name = "efactura.status"
    queue = QUEUE
    Payload = StatusPayload
    Result = StatusResult

    async def run(self, payload: StatusPayload, ctx: JobContext) -> StatusResult:
        status = await self.client().status(payload.upload_index)
        return StatusResult(
            upload_index=status.index, state=status.state, download_id=status.download_id
        )


class DownloadMessage(_EfacturaTask, Task[DownloadPayload, DownloadResult]):
    """ANAF's signed ZIP for a message (10 downloads a day each): verified, stored."""

    name = "efactura.download"
    queue = QUEUE
    Payload = DownloadPayload
    Result = DownloadResult

    async def run(self, payload: DownloadPayload, ctx: JobContext) -> DownloadResult:
        submitter = self.submitter
        archive = await submitter.fetch(payload.download_id)
        zip_meta = await ctx.artifacts.put(
            archive.raw, "application/zip", filename=f"{payload.download_id}.zip"
        )
        doc_meta = await ctx.artifacts.put(
            archive.document, "application/xml", filename=archive.document_name
        )
        return DownloadResult(
            download_id=payload.download_id,
            zip_artifact_id=zip_meta.id,
            document_artifact_id=doc_meta.id,
            document_name=archive.document_name,
            is_error_list=archive.is_error_list,
            errors=archive.errors,
            signature=archive.signature,
        )


class ListMessages(_EfacturaTask, Task[InboxPayload, InboxResult]):
    """The SPV messages of a CIF over the last N days (invoices received and sent, errors)."""

    name = "efactura.inbox"
    queue = QUEUE
    Payload = InboxPayload
    Result = InboxResult
    time_limit_s = 600.0

    async def run(self, payload: InboxPayload, ctx: JobContext) -> InboxResult:
        cif = cif_of(payload.cif)
        # ANAF judges the window by its own clock: a little inside both ends (notes §2.5).
        end = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        start = end - dt.timedelta(days=payload.days) + dt.timedelta(minutes=1)
        messages = await self.client().messages(cif, start, end, payload.filter)
        return InboxResult(cif=cif, messages=sorted(messages, key=lambda m: m.created_at))


class InvoicePdf(_EfacturaTask, Task[PdfPayload, PdfResult]):
    """ANAF's own PDF rendering of an invoice (transformare: public, no token)."""

    name = "efactura.pdf"
    queue = QUEUE
    Payload = PdfPayload
    Result = PdfResult

    async def run(self, payload: PdfPayload, ctx: JobContext) -> PdfResult:
        xml = await self.invoice_xml(payload, ctx)
        invoice = identify(xml)
        pdf = await self.client().to_pdf(
            xml, credit_note=invoice.document == "CreditNote", validate=payload.validate_first
        )
        meta = await ctx.artifacts.put(
            pdf, "application/pdf", filename=f"{_safe(invoice.number)}.pdf"
        )
        return PdfResult(pdf_artifact_id=meta.id, size=meta.size)


TASKS = [SubmitInvoice, InvoiceStatus, DownloadMessage, ListMessages, InvoicePdf]
