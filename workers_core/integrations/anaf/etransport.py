"""The RO e-Transport API (``/{env}/ETRANSPORT/ws/v1``): upload, stareMesaj, lista.

Per notes/anaf.md §3.1: the same OAuth tokens and host as e-Factura; the upload is
``POST upload/ETRANSP/{cif}/2`` with the XML (``application/xml``) and answers JSON with
``index_incarcare`` and the ``UIT`` — a UIT valid only once ``stareMesaj`` says ``ok``.
Errors are ``ExecutionStatus: 1`` with ``Errors: [{errorMessage}]``, also for "no messages"
in ``lista``. Uploads are not idempotent: never retried once the request may have left
(``OutcomeUnknown``); the flow around them is ``workers_core.etransport.submission``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import httpx
import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from workers_core.config import Settings
from workers_core.integrations.anaf.errors import (
    AnafRateLimited,
    AnafRejected,
)
from workers_core.integrations.anaf.http import ROMANIA, AnafHttp, seconds_to_romanian_midnight
from workers_core.integrations.anaf.oauth import AnafOAuth
from workers_core.integrations.anaf.spv import DailyQuota, SpvClient, api_host, oauth_if_configured

VERSION = 2  # the XSD v2 data schema (path segment ``versiune``)
MAX_LIST_DAYS = 60
# Our own stareMesaj budget per upload per day: ANAF publishes none for e-Transport; the
# e-Factura limit (100, limiteApeluriAPI.txt) is used by analogy.
NO_MESSAGES = "Nu exista mesaje"

State = Literal["ok", "nok", "in prelucrare", "XML cu erori nepreluat de sistem"]
FINAL_STATES: frozenset[str] = frozenset({"ok", "nok", "XML cu erori nepreluat de sistem"})


class UploadReceipt(BaseModel):
    index: int = Field(description="index_incarcare: what stareMesaj is asked about.")
    uit: str = Field(description="The UIT; valid only once stareMesaj says ok.")
    answered_at: str | None = Field(default=None, description="ANAF's dateResponse.")
    ref: str | None = Field(default=None, description="ref_declarant echoed back.")
    trace_id: str | None = None


class DeclarationStatus(BaseModel):
    index: int
    state: State
    errors: list[str] = Field(default_factory=list, description="ANAF's messages on nok.")

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class EtransportMessage(BaseModel):
    """One ``lista`` entry (final states of declarations, errors included)."""

    kind: str = Field(description="``tip``: NOT, COR, DEL, CON, MVH.")
    state: str = Field(description="``stare``: OK or ERR.")
    uit: str | None = None
    upload_index: int | None = Field(default=None, description="``id_incarcare``.")
    declarant_code: str | None = Field(default=None, description="``cod_decl``.")
    ref: str | None = Field(default=None, description="``ref_decl``.")
    operation: int | None = Field(default=None, description="``tip_op``.")
    created_at: str | None = Field(default=None, description="``data_creare`` as sent.")
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @classmethod
    def from_anaf(cls, raw: dict[str, Any]) -> EtransportMessage:
        def text(key: str) -> str | None:
            value = raw.get(key)
            return None if value in (None, "") else str(value)

        index, op = text("id_incarcare"), text("tip_op")
        return cls(
            kind=str(raw.get("tip", "")),
            state=str(raw.get("stare", "")),
            uit=text("uit"),
            upload_index=int(index) if index and index.isdigit() else None,
            declarant_code=text("cod_decl"),
            ref=text("ref_decl"),
            operation=int(op) if op and op.isdigit() else None,
            created_at=text("data_creare"),
            raw=raw,
        )


class EtransportClient(SpvClient):
    """The e-Transport calls with Bearer tokens, a shared status quota, answers typed."""

    service = "e-Transport"

    def __init__(
        self, api: AnafHttp, oauth: AnafOAuth | None, *, env: str, status_quota: DailyQuota
    ) -> None:
        super().__init__(api, oauth)
        self.base = f"/{env}/ETRANSPORT/ws/v1"
        self.status_quota = status_quota

    @classmethod
    def from_settings(cls, settings: Settings, redis: aioredis.Redis) -> EtransportClient:
        prefix = settings.redis_prefix
        budget = settings.etransport_status_daily_budget
        return cls(
            api_host(settings, redis),
            oauth_if_configured(settings, redis),
            env=settings.anaf_env,
            status_quota=DailyQuota(redis, prefix, "etransport-stareMesaj", int(budget)),
        )

    async def upload(self, xml: bytes, cif: int) -> UploadReceipt:
        """Upload once. Never retried after the request may have left (OutcomeUnknown)."""

        async def send(headers: dict[str, str]) -> Any:
            return await self.api.request(
                "POST",
                f"{self.base}/upload/ETRANSP/{cif}/{VERSION}",
                content=xml,
                headers={**headers, "Content-Type": "application/xml"},
                idempotent=False,
            )

        body = _json(await self._authorised(send), "upload")
        errors = _errors_in(body)
        if str(body.get("ExecutionStatus")) != "0" or errors:
            text = "; ".join(errors) or f"ExecutionStatus={body.get('ExecutionStatus')}"
            raise AnafRejected(f"ANAF refused the e-Transport upload: {text}", eroare=text)
        index, uit = str(body.get("index_incarcare", "")), body.get("UIT")
        if not index.isdigit() or not isinstance(uit, str) or not uit:
            raise AnafRejected("ANAF accepted the upload but sent no index_incarcare or UIT")
        return UploadReceipt(
            index=int(index),
            uit=uit,
            answered_at=_opt(body.get("dateResponse")),
            ref=_opt(body.get("ref_declarant")),
            trace_id=_opt(body.get("trace_id")),
        )

    async def status(self, index: int) -> DeclarationStatus:
        """One stareMesaj query, counted against the upload's daily budget."""
        await self.status_quota.take(index)

        async def send(headers: dict[str, str]) -> Any:
            return await self.api.request("GET", f"{self.base}/stareMesaj/{index}", headers=headers)

        body = _json(await self._authorised(send), "stareMesaj")
        errors = _errors_in(body)
        state = body.get("stare")
        if state is None:
            text = "; ".join(errors) or "no stare in the answer"
            if "in cursul zilei" in text:
                raise AnafRateLimited(
                    f"ANAF stareMesaj: {text}", after_s=seconds_to_romanian_midnight(), eroare=text
                )
            raise AnafRejected(f"ANAF stareMesaj for {index}: {text}", eroare=text)
        if state not in ("ok", "nok", "in prelucrare", "XML cu erori nepreluat de sistem"):
            raise AnafRejected(f"ANAF stareMesaj for {index}: unknown state {state!r}")
        return DeclarationStatus(index=index, state=state, errors=errors)

    async def messages(self, cif: int, days: int) -> list[EtransportMessage]:
        """The declarations of ``cif`` in the last ``days`` (1-60); ANAF's "none" is []."""
        days = max(1, min(MAX_LIST_DAYS, days))

        async def send(headers: dict[str, str]) -> Any:
            return await self.api.request("GET", f"{self.base}/lista/{days}/{cif}", headers=headers)

        body = _json(await self._authorised(send), "lista")
        errors = _errors_in(body)
        if errors:
            text = "; ".join(errors)
            if text.startswith(NO_MESSAGES):
                return []
            raise AnafRejected(f"ANAF lista for {cif}: {text}", eroare=text)
        rows = body.get("mesaje") or []
        return [EtransportMessage.from_anaf(row) for row in rows if isinstance(row, dict)]


def list_days_since(moment: float) -> int:
    """The ``zile`` that covers ``moment`` (epoch seconds), by ANAF's (Romanian) calendar."""
    start = dt.datetime.fromtimestamp(moment, ROMANIA).date()
    return (dt.datetime.now(ROMANIA).date() - start).days + 1


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise AnafRejected(f"ANAF {what}: the answer is not JSON") from exc
    if not isinstance(body, dict):
        raise AnafRejected(f"ANAF {what}: the answer is not a JSON object")
    return body


def _errors_in(body: dict[str, Any]) -> list[str]:
    errors = body.get("Errors") or []
    return [str(e.get("errorMessage")) for e in errors if isinstance(e, dict)]


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)
