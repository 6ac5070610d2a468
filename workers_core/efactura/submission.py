"""Submitting one invoice to ANAF at most once, and following it to ANAF's verdict.

ANAF accepts the same invoice twice and registers it twice (odoo/odoo#198604, OCA #936), so:

1. An idempotency key per invoice (seller CIF + number + issue date) is claimed in the
   side-effect ledger BEFORE the upload; the upload index is recorded the moment ANAF
   answers. A retry that finds the index never uploads again: it resumes polling.
2. An upload whose answer was lost (timeout after sending, crash) leaves the claim
   ``started``. The next attempt looks the invoice up in the SPV message list (downloading
   candidates to compare number and date) instead of uploading; only after
   ``efactura_lookup_grace_s`` without a match (entries appear up to ~15 min after
   processing) does it conclude the upload never arrived and upload again.
3. A ``nok`` invoice is not registered by ANAF: its claim is released, so the corrected
   invoice (same number) can be submitted.
4. ``stareMesaj`` is polled with doubling waits, within the per-message daily budget; when
   one attempt's polling time is up the job hands back (``Retry``) and a later attempt
   resumes from the recorded index.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from cryptography import x509
from pydantic import BaseModel

from workers_core.efactura.archive import AnafArchive, open_archive
from workers_core.efactura.errors import MalformedXml
from workers_core.efactura.safe_xml import parse_untrusted
from workers_core.efactura.validate import DOCUMENTS, Document
from workers_core.integrations.anaf.efactura import (
    EfacturaClient,
    MessageStatus,
    SpvMessage,
    Standard,
)
from workers_core.jobs.polling import PollPolicy, poll_until_final
from workers_core.jobs.side_effects import (
    LostAnswerLookup,
    Reuse,
    SideEffectLedger,
    at_most_once_or_found,
)

UBL = {
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
}
_PARTY_ID = (
    "cac:{role}/cac:Party/cac:PartyTaxScheme/cbc:CompanyID/text()"
    " | cac:{role}/cac:Party/cac:PartyLegalEntity/cbc:CompanyID/text()"
)


class InvoiceIdentity(BaseModel):
    """What names an invoice at ANAF: the key of "at most once"."""

    document: Document
    number: str
    issue_date: dt.date
    seller_cif: int
    buyer_cif: str | None
    sha256: str

    @property
    def standard(self) -> Standard:
        return Standard.CN if self.document == "CreditNote" else Standard.UBL

    def effect_key(self) -> str:
        digest = hashlib.sha256(
            f"{self.seller_cif}|{self.number}|{self.issue_date.isoformat()}".encode()
        ).hexdigest()[:32]
        return f"efactura:upload:{self.seller_cif}:{digest}"

    def label(self) -> str:
        return f"invoice {self.number} of {self.issue_date} from CIF {self.seller_cif}"


def identify(xml: bytes) -> InvoiceIdentity:
    """Number, date and parties of a UBL Invoice/CreditNote; MalformedXml if one is missing."""
    root = parse_untrusted(xml).getroot()
    document = DOCUMENTS.get(root.tag)
    if document is None:
        raise MalformedXml(f"root {root.tag} is neither a UBL Invoice nor a CreditNote")
    supplier, customer = "AccountingSupplierParty", "AccountingCustomerParty"
    number = root.findtext("cbc:ID", namespaces=UBL)
    issued = root.findtext("cbc:IssueDate", namespaces=UBL)
    seller = _digits(root.xpath(_PARTY_ID.format(role=supplier), namespaces=UBL))
    buyer = _digits(root.xpath(_PARTY_ID.format(role=customer), namespaces=UBL))
    if not number or not issued or not seller:
        raise MalformedXml("the invoice needs cbc:ID, cbc:IssueDate and the seller's CompanyID")
    try:
        issue_date = dt.date.fromisoformat(issued.strip())
    except ValueError as exc:
        raise MalformedXml(f"cbc:IssueDate {issued!r} is not a date") from exc
    return InvoiceIdentity(
        document=document,
        number=number.strip(),
        issue_date=issue_date,
        seller_cif=int(seller),
        buyer_cif=buyer,
        sha256=hashlib.sha256(xml).hexdigest(),
    )


def _digits(values: Sequence[Any]) -> str | None:
    for value in values:
        digits = "".join(ch for ch in str(value) if ch.isdigit())
        if digits:
            return digits
    return None


class UploadOutcome(BaseModel):
    index: int
    reused: bool  # an earlier attempt (or job) uploaded it; we did not upload again
    found_by_lookup: bool = False


class UploadOptions(BaseModel):
    cif: int
    extern: bool = False
    self_billed: bool = False
    enforcement: bool = False
    b2c: bool = False


StateCallback = Callable[[MessageStatus], Awaitable[None]]


class InvoiceSubmitter:
    """The flow above, over an ``EfacturaClient`` and the side-effect ledger."""

    def __init__(
        self,
        client: EfacturaClient,
        ledger: SideEffectLedger,
        *,
        poll_first_s: float,
        poll_max_interval_s: float,
        poll_in_job_s: float,
        lookup_grace_s: float,
        lookup_retry_s: float,
        pinned: Sequence[x509.Certificate] = (),
        list_end_margin_s: float = 5.0,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.polling = PollPolicy(poll_first_s, poll_max_interval_s, poll_in_job_s)
        self.lookup_grace_s = lookup_grace_s
        self.lookup_retry_s = lookup_retry_s
        self.pinned = list(pinned)
        # The list's endTime must not be in the future by ANAF's clock (notes §2.5).
        self.list_end_margin_s = list_end_margin_s

    async def upload_once(
        self, xml: bytes, invoice: InvoiceIdentity, options: UploadOptions, attempt: int
    ) -> UploadOutcome:
        async def upload() -> dict[str, Any]:
            receipt = await self.client.upload(
                xml,
                options.cif,
                invoice.standard,
                extern=options.extern,
                self_billed=options.self_billed,
                enforcement=options.enforcement,
                b2c=options.b2c,
            )
            return {"index": receipt.index}

        async def find(since: float) -> dict[str, Any] | None:
            found = await self.find_upload(invoice, since)
            return None if found is None else {"index": found.upload_index}

        def conflict(outcome: dict[str, Any]) -> str:
            return (
                f"{invoice.label()} was already uploaded (index_incarcare "
                f"{outcome.get('index')}) with different content; ANAF does not replace "
                "an invoice: issue a credit note, or a new number"
            )

        outcome, how = await at_most_once_or_found(
            self.ledger,
            invoice.effect_key(),
            attempt,
            fingerprint=invoice.sha256,
            label=invoice.label(),
            act=upload,
            lookup=LostAnswerLookup(
                find,
                self.lookup_grace_s,
                self.lookup_retry_s,
                where="the SPV message list",
                where_short="the message list",
            ),
            conflict=conflict,
        )
        return UploadOutcome(
            index=int(outcome["index"]),
            reused=how is not Reuse.NEW,
            found_by_lookup=how is Reuse.FOUND,
        )

    async def release(self, invoice: InvoiceIdentity) -> None:
        """ANAF did not register it (``nok``): let the corrected invoice be uploaded."""
        await self.ledger.release(invoice.effect_key())

    async def find_upload(self, invoice: InvoiceIdentity, since: float) -> SpvMessage | None:
        """The sent-invoice message for ``invoice`` since ``since``, compared by download."""
        start = dt.datetime.fromtimestamp(since, dt.UTC)
        end = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.list_end_margin_s)
        floor = dt.datetime.now(dt.UTC) - dt.timedelta(days=59)
        start = max(start, floor)
        if start >= end:
            return None
        messages = await self.client.messages(invoice.seller_cif, start, end)
        for message in messages:
            if message.kind != "FACTURA TRIMISA" or message.upload_index <= 0:
                continue
            if invoice.buyer_cif and message.buyer_cif and message.buyer_cif != invoice.buyer_cif:
                continue
            archive = await self.fetch(message.download_id)
            try:
                theirs = identify(archive.document)
            except MalformedXml:
                continue
            if (theirs.number, theirs.issue_date, theirs.seller_cif) == (
                invoice.number,
                invoice.issue_date,
                invoice.seller_cif,
            ):
                return message
        return None

    async def fetch(self, download_id: int) -> AnafArchive:
        return open_archive(await self.client.download(download_id), self.pinned)

    async def poll(self, index: int, on_state: StateCallback | None = None) -> MessageStatus:
        """Poll until a final state, or hand back with ``Retry`` when this attempt's time is up."""
        return await poll_until_final(
            lambda: self.client.status(index), self.polling,
            f"ANAF is still processing upload {index}; polling again later", on_state,
        )
