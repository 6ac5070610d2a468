"""The RO e-Factura (FCTEL) API: upload, stareMesaj, message lists, descarcare, transformare.

One method per ANAF call, each answer read into a typed value or a typed error; the flow
around them (at most one upload, polling, lookup after a lost answer) is
``workers_core.efactura.submission``. What this module guards (notes/anaf.md §2):

- Uploads are not idempotent at ANAF: ``upload`` is never retried once the request may have
  left, and a lost answer is ``OutcomeUnknown``.
- Every call carries a Bearer token from ``AnafOAuth``; a 401 refreshes once and retries
  (ANAF answers 401 before it acts).
- Quotas are ANAF's published ones, counted in Redis so every replica shares them: 1000
  calls/min overall, stareMesaj and descarcare per message per day (our budget is below
  ANAF's limit: over-limit calls can get the application blocked).
- Errors come as HTTP 200 XML ``<Errors errorMessage=…/>`` or JSON ``eroare``.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Any, Literal

import redis.asyncio as aioredis
from lxml import etree  # type: ignore[import-untyped]
from pydantic import BaseModel, Field

from workers_core.config import Settings
from workers_core.efactura.errors import MalformedXml
from workers_core.efactura.safe_xml import parse_untrusted
from workers_core.integrations.anaf.errors import (
    AnafRateLimited,
    AnafRejected,
)
from workers_core.integrations.anaf.http import (
    ROMANIA,
    AnafHttp,
    eroare_of,
    seconds_to_romanian_midnight,
)
from workers_core.integrations.anaf.oauth import AnafOAuth
from workers_core.integrations.anaf.spv import (
    DailyQuota,
    SpvClient,
    api_host,
    oauth_if_configured,
)

MAX_LIST_DAYS = 60
_INDEX_IN_DETAILS = {
    "issuer": re.compile(r"cif_emitent=(\d+)"),
    "buyer": re.compile(r"cif_beneficiar=(\d+)"),
}


class Standard(StrEnum):
    UBL = "UBL"  # Invoice
    CN = "CN"  # CreditNote
    CII = "CII"
    RASP = "RASP"  # a buyer's message to the issuer


class MessageFilter(StrEnum):
    ERRORS = "E"
    SENT = "T"
    RECEIVED = "P"
    BUYER_MESSAGE = "R"


State = Literal["ok", "nok", "in prelucrare", "XML cu erori nepreluat de sistem"]
FINAL_STATES: frozenset[str] = frozenset({"ok", "nok", "XML cu erori nepreluat de sistem"})


class UploadReceipt(BaseModel):
    index: int = Field(description="index_incarcare: what stareMesaj is asked about.")
    answered_at: str | None = Field(default=None, description="ANAF's dateResponse.")


class MessageStatus(BaseModel):
    index: int
    state: State
    download_id: int | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class SpvMessage(BaseModel):
    """One entry of the SPV message list (listaMesaje*)."""

    download_id: int = Field(description="``id``: what descarcare takes.")
    upload_index: int = Field(description="``id_solicitare``: the upload's index_incarcare.")
    cif: str
    kind: str = Field(description="``tip``: FACTURA TRIMISA, FACTURA PRIMITA, ERORI FACTURA …")
    created_at: dt.datetime = Field(description="``data_creare``, Romania time.")
    details: str
    issuer_cif: str | None = Field(default=None, description="Parsed from ``detalii``.")
    buyer_cif: str | None = Field(default=None, description="Parsed from ``detalii``.")

    @classmethod
    def from_anaf(cls, raw: dict[str, Any]) -> SpvMessage:
        details = str(raw.get("detalii", ""))
        found = {
            name: (m.group(1) if (m := pattern.search(details)) else None)
            for name, pattern in _INDEX_IN_DETAILS.items()
        }
        created = dt.datetime.strptime(str(raw["data_creare"]), "%Y%m%d%H%M").replace(
            tzinfo=ROMANIA
        )
        return cls(
            download_id=int(raw["id"]),
            upload_index=int(raw["id_solicitare"]),
            cif=str(raw.get("cif", "")),
            kind=str(raw.get("tip", "")),
            created_at=created,
            details=details,
            issuer_cif=found["issuer"],
            buyer_cif=found["buyer"],
        )


class EfacturaClient(SpvClient):
    """The FCTEL calls with Bearer tokens, shared quotas and ANAF's answers typed."""

    service = "e-Factura"

    def __init__(
        self,
        api: AnafHttp,
        public: AnafHttp,
        oauth: AnafOAuth | None,
        *,
        env: str,
        status_quota: DailyQuota,
        download_quota: DailyQuota,
    ) -> None:
        super().__init__(api, oauth)
        self.public = public
        self.rest = f"/{env}/FCTEL/rest"
        self.status_quota = status_quota
        self.download_quota = download_quota

    @classmethod
    def from_settings(cls, settings: Settings, redis: aioredis.Redis) -> EfacturaClient:
        prefix = settings.redis_prefix
        public = AnafHttp(settings.anaf_public_url, timeout_s=settings.anaf_timeout_s)
        return cls(
            api_host(settings, redis),
            public,
            oauth_if_configured(settings, redis),
            env=settings.anaf_env,
            status_quota=DailyQuota(
                redis, prefix, "stareMesaj", settings.efactura_status_daily_budget
            ),
            download_quota=DailyQuota(
                redis, prefix, "descarcare", settings.efactura_download_daily_budget
            ),
        )

    async def aclose(self) -> None:
        await super().aclose()
        await self.public.aclose()

    async def upload(
        self,
        xml: bytes,
        cif: int,
        standard: Standard,
        *,
        extern: bool = False,
        self_billed: bool = False,
        enforcement: bool = False,
        b2c: bool = False,
    ) -> UploadReceipt:
        """Upload once. Never retried after the request may have left (OutcomeUnknown)."""
        params = {"standard": standard.value, "cif": str(cif)}
        for flag, on in (
            ("extern", extern),
            ("autofactura", self_billed),
            ("executare", enforcement),
        ):
            if on:
                params[flag] = "DA"
        path = f"{self.rest}/{'uploadb2c' if b2c else 'upload'}"

        async def send(headers: dict[str, str]) -> Any:
            return await self.api.request(
                "POST",
                path,
                params=params,
                content=xml,
                headers={**headers, "Content-Type": "text/plain"},
                idempotent=False,
            )

        response = await self._authorised(send)
        root = _xml_answer(response.content, "upload")
        errors = _errors_in(root)
        if root.get("ExecutionStatus") != "0" or errors:
            text = "; ".join(errors) or "ExecutionStatus=" + str(root.get("ExecutionStatus"))
            raise AnafRejected(f"ANAF refused the upload: {text}", eroare=text)
        index = root.get("index_incarcare")
        if not index or not index.isdigit():
            raise AnafRejected("ANAF accepted the upload but sent no index_incarcare")
        return UploadReceipt(index=int(index), answered_at=root.get("dateResponse"))

    async def status(self, index: int) -> MessageStatus:
        """One stareMesaj query, counted against the message's daily budget."""
        await self.status_quota.take(index)

        async def send(headers: dict[str, str]) -> Any:
            return await self.api.request(
                "GET",
                f"{self.rest}/stareMesaj",
                params={"id_incarcare": str(index)},
                headers=headers,
            )

        root = _xml_answer((await self._authorised(send)).content, "stareMesaj")
        errors = _errors_in(root)
        if errors:
            text = "; ".join(errors)
            if "in cursul zilei" in text:
                raise AnafRateLimited(
                    f"ANAF stareMesaj: {text}", after_s=seconds_to_romanian_midnight(), eroare=text
                )
            raise AnafRejected(f"ANAF stareMesaj for {index}: {text}", eroare=text)
        state = root.get("stare")
        if state not in ("ok", "nok", "in prelucrare", "XML cu erori nepreluat de sistem"):
            raise AnafRejected(f"ANAF stareMesaj for {index}: unknown state {state!r}")
        download = root.get("id_descarcare")
        return MessageStatus(
            index=index,
            state=state,
            download_id=int(download) if download and download.isdigit() else None,
        )

    async def messages(
        self,
        cif: int,
        start: dt.datetime,
        end: dt.datetime,
        kind: MessageFilter | None = None,
    ) -> list[SpvMessage]:
        """Every message between ``start`` and ``end`` (paginated endpoint, 500 a page)."""
        found: list[SpvMessage] = []
        page, pages = 1, 1
        while page <= pages:
            params = {
                "startTime": str(int(start.timestamp() * 1000)),
                "endTime": str(int(end.timestamp() * 1000)),
                "cif": str(cif),
                "pagina": str(page),
            }
            if kind is not None:
                params["filtru"] = kind.value

            async def send(headers: dict[str, str], params: dict[str, str] = params) -> Any:
                return await self.api.request(
                    "GET",
                    f"{self.rest}/listaMesajePaginatieFactura",
                    params=params,
                    headers=headers,
                )

            try:
                response = await self._authorised(send)
            except AnafRejected as exc:
                if exc.eroare and exc.eroare.startswith("Nu exista mesaje"):
                    return found  # ANAF's "no messages" is an error body
                raise
            body = response.json()
            found.extend(SpvMessage.from_anaf(raw) for raw in body.get("mesaje", []))
            pages = int(body.get("numar_total_pagini") or 1)
            page += 1
        return found

    async def download(self, download_id: int) -> bytes:
        """The message's ZIP, counted against its daily download budget."""
        await self.download_quota.take(download_id)

        async def send(headers: dict[str, str]) -> Any:
            return await self.api.request(
                "GET", f"{self.rest}/descarcare", params={"id": str(download_id)}, headers=headers
            )

        response = await self._authorised(send)
        if not response.content.startswith(b"PK"):
            raise AnafRejected(
                f"ANAF descarcare {download_id}: not a ZIP ({eroare_of(response) or 'unreadable'})"
            )
        return bytes(response.content)

    async def to_pdf(self, xml: bytes, credit_note: bool, validate: bool = True) -> bytes:
        """ANAF's own PDF of an invoice (public, prod only; ``validate=False`` is ``/DA``)."""
        path = f"/prod/FCTEL/rest/transformare/{'FCN' if credit_note else 'FACT1'}"
        if not validate:
            path += "/DA"
        response = await self.public.request(
            "POST", path, content=xml, headers={"Content-Type": "text/plain"}
        )
        if response.content.startswith(b"%PDF"):
            return bytes(response.content)
        body = response.json() if "json" in response.headers.get("content-type", "") else {}
        messages = [str(m.get("message")) for m in body.get("Messages", []) if isinstance(m, dict)]
        raise AnafRejected(
            "ANAF transformare refused the invoice: " + ("; ".join(messages) or "no PDF returned"),
            eroare="; ".join(messages) or None,
        )


def _xml_answer(content: bytes, what: str) -> etree._Element:
    try:
        return parse_untrusted(content).getroot()
    except MalformedXml as exc:
        raise AnafRejected(f"ANAF {what}: the answer is not XML ({exc.message})") from exc


def _errors_in(root: etree._Element) -> list[str]:
    """``<Errors errorMessage="…"/>`` children, whatever the namespace."""
    return [
        str(child.get("errorMessage"))
        for child in root
        if isinstance(child.tag, str) and etree.QName(child).localname == "Errors"
    ]
