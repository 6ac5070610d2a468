"""Declaring one shipment to e-Transport at most once, and following it to ``ok``.

ANAF registers every upload it receives (each gets its own UIT), so, as for e-Factura:

1. A key per shipment (the caller's ``shipment_key``, scoped by declarant) is claimed in
   the side-effect ledger BEFORE the upload; index and UIT are recorded the moment ANAF
   answers. A retry that finds them never uploads again: it resumes polling.
2. An upload whose answer was lost leaves the claim ``started``. The next attempt looks for
   the declaration in ``lista`` by its ``refDeclarant`` (we set one derived from the key
   when the caller gave none) instead of uploading; only after ``lookup_grace_s`` without
   a match does it conclude the upload never arrived and upload again.
3. ``nok``: the UIT never became valid; the claim is released so a corrected declaration
   for the same shipment can be sent.
4. ``stareMesaj`` is polled with doubling waits; when one attempt's time is up the job
   hands back (``Retry``) and a later attempt resumes from the recorded index.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from workers_core.etransport.codes import OperationType
from workers_core.etransport.model import Declaration
from workers_core.integrations.anaf.etransport import (
    DeclarationStatus,
    EtransportClient,
    EtransportMessage,
    list_days_since,
)
from workers_core.jobs.polling import PollPolicy, poll_until_final
from workers_core.jobs.side_effects import (
    LostAnswerLookup,
    Reuse,
    SideEffectLedger,
    at_most_once_or_found,
)

_KINDS = {"notificare": ("NOT", "COR"), "stergere": ("DEL",), "confirmare": ("CON",)}
# UIT validity (notes/anaf.md §3.3 [ETL]): 5 days from the declared start, 15 for AIC and
# for the DIN / lohn / call-off intake legs (our reading of "AIC and DIN/lohn/call-off legs").
LONG_VALIDITY = frozenset(
    {OperationType.AIC, OperationType.LHI, OperationType.SCI, OperationType.DIN}
)


def shipment_ref(shipment_key: str) -> str:
    """A ``refDeclarant`` (≤ 50) naming the shipment, for the lost-answer lookup."""
    return "wc-" + hashlib.sha256(shipment_key.encode()).hexdigest()[:32]


def with_ref(declaration: Declaration, shipment_key: str) -> Declaration:
    """The declaration, given a ``refDeclarant`` derived from the key if it has none."""
    if declaration.ref is not None:
        return declaration
    return declaration.model_copy(update={"ref": shipment_ref(shipment_key)})


def validity_days(declaration: Declaration) -> int | None:
    n = declaration.notification
    if n is None:
        return None
    return 15 if n.operation in LONG_VALIDITY else 5


def valid_until(declaration: Declaration) -> dt.date | None:
    days = validity_days(declaration)
    n = declaration.notification
    if days is None or n is None:
        return None
    return n.transport.date + dt.timedelta(days=days)


class ShipmentIdentity(BaseModel):
    """What names a declaration upload: the key of "at most once"."""

    shipment_key: str
    declarant_code: str
    ref: str
    kind: str
    sha256: str

    def effect_key(self) -> str:
        digest = hashlib.sha256(self.shipment_key.encode()).hexdigest()[:32]
        return f"etransport:upload:{self.declarant_code}:{digest}"

    def label(self) -> str:
        return f"e-Transport {self.kind} for shipment {self.shipment_key!r}"


def identify(declaration: Declaration, xml: bytes, shipment_key: str) -> ShipmentIdentity:
    if declaration.ref is None:
        raise ValueError("give the declaration a ref first (with_ref)")
    return ShipmentIdentity(
        shipment_key=shipment_key,
        declarant_code=declaration.declarant_code,
        ref=declaration.ref,
        kind=declaration.kind,
        sha256=hashlib.sha256(xml).hexdigest(),
    )


class UploadOutcome(BaseModel):
    index: int
    uit: str
    reused: bool
    found_by_lookup: bool = False


StateCallback = Callable[[DeclarationStatus], Awaitable[None]]


class DeclarationSubmitter:
    """The flow above, over an ``EtransportClient`` and the side-effect ledger."""

    def __init__(
        self,
        client: EtransportClient,
        ledger: SideEffectLedger,
        *,
        poll_first_s: float,
        poll_max_interval_s: float,
        poll_in_job_s: float,
        lookup_grace_s: float,
        lookup_retry_s: float,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.polling = PollPolicy(poll_first_s, poll_max_interval_s, poll_in_job_s)
        self.lookup_grace_s = lookup_grace_s
        self.lookup_retry_s = lookup_retry_s

    async def upload_once(
        self, xml: bytes, shipment: ShipmentIdentity, cif: int, attempt: int
    ) -> UploadOutcome:
        async def upload() -> dict[str, Any]:
            receipt = await self.client.upload(xml, cif)
            return {"index": receipt.index, "uit": receipt.uit}

        async def find(since: float) -> dict[str, Any] | None:
            found = await self.find_upload(shipment, cif, since)
            if found is None or found.upload_index is None or not found.uit:
                return None
            return {"index": found.upload_index, "uit": found.uit}

        def conflict(outcome: dict[str, Any]) -> str:
            return (
                f"{shipment.label()} was already declared (UIT {outcome.get('uit')}) with "
                "different content; send a correction (notification.corrects) under a "
                "new shipment key"
            )

        outcome, how = await at_most_once_or_found(
            self.ledger,
            shipment.effect_key(),
            attempt,
            fingerprint=shipment.sha256,
            label=shipment.label(),
            act=upload,
            lookup=LostAnswerLookup(
                find,
                self.lookup_grace_s,
                self.lookup_retry_s,
                where="the e-Transport list",
                where_short="the e-Transport list",
            ),
            conflict=conflict,
            note={"ref": shipment.ref},
        )
        return UploadOutcome(
            index=int(outcome["index"]),
            uit=str(outcome["uit"]),
            reused=how is not Reuse.NEW,
            found_by_lookup=how is Reuse.FOUND,
        )

    async def release(self, shipment: ShipmentIdentity) -> None:
        """ANAF said ``nok``: the UIT never became valid; allow a corrected declaration."""
        await self.ledger.release(shipment.effect_key())

    async def find_upload(
        self, shipment: ShipmentIdentity, cif: int, since: float
    ) -> EtransportMessage | None:
        """Our declaration in ``lista``, by its ``refDeclarant``, uploaded since ``since``."""
        kinds = _KINDS.get(shipment.kind, ("MVH",))
        for message in await self.client.messages(cif, list_days_since(since)):
            if message.ref == shipment.ref and message.kind in kinds:
                return message
        return None

    async def poll(self, index: int, on_state: StateCallback | None = None) -> DeclarationStatus:
        """Poll until a final state, or hand back with ``Retry`` when this attempt's time is up."""
        return await poll_until_final(
            lambda: self.client.status(index),
            self.polling,
            f"ANAF is still processing e-Transport upload {index}; polling again later",
            on_state,
        )
