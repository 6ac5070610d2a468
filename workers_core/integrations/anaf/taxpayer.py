"""The public taxpayer lookup (PlatitorTvaRest v9): VAT, VAT on collection, split VAT,
inactive status and the RO e-Factura register for up to 100 CUIs a request, at 1 req/s.

Request and answer as doc_WS_V9.txt and anafpy's live notes describe them (notes/anaf.md
§1): a JSON array of ``{"cui": int, "data": "YYYY-MM-DD"}``; ``{"found": [...],
"notFound": [...]}``; dates are empty strings when absent; ``perioade_TVA`` is an array live
but an object in the doc, so both are read. Answers are cached per (CUI, date) in Redis.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from workers_core.config import Settings
from workers_core.integrations.anaf.errors import AnafRejected
from workers_core.integrations.anaf.http import PUBLIC_LOOKUP_RATE, AnafHttp
from workers_core.jobs.keys import RedisKeys
from workers_core.ratelimit import RedisRateLimiter

V9_PATH = "/api/PlatitorTvaRest/v9/tva"
MAX_CUIS_PER_REQUEST = 100  # doc_WS_V9.txt: "maxim 100 de CUI-uri"
NOT_FOUND_TTL_S = 3600  # an unknown CUI may be registered today: keep that answer an hour

ProgressCallback = Callable[[int, int], Awaitable[None]]


class Address(BaseModel):
    street: str = ""
    number: str = ""
    locality: str = ""
    county: str = ""
    county_code: str = Field(default="", description="Plate code: B, TM, CJ …")
    country: str = ""
    details: str = ""
    postal_code: str = ""


class VatPeriod(BaseModel):
    start: date | None = None
    end: date | None = None
    cancelled_on: date | None = None
    message: str = ""


class CompanyRecord(BaseModel):
    """One taxpayer as ANAF's registers stand on ``as_of``."""

    cui: int
    as_of: date
    name: str
    address: str = ""
    registered_office: Address = Field(default_factory=Address)
    fiscal_domicile: Address = Field(default_factory=Address)
    registration_number: str = Field(default="", description="Trade register (nrRegCom).")
    registration_status: str = ""
    registration_date: date | None = None
    caen_code: str = ""
    legal_form: str = ""
    fiscal_office: str = ""
    vat_registered: bool = False
    vat_periods: list[VatPeriod] = Field(default_factory=list)
    vat_on_collection: bool = False
    vat_on_collection_since: date | None = None
    split_vat: bool = False
    split_vat_since: date | None = None
    inactive: bool = False
    inactive_since: date | None = None
    reactivated_on: date | None = None
    deregistered_on: date | None = None
    e_invoice_registry: bool = Field(
        default=False, description="In the opt-in RO e-Factura register (statusRO_e_Factura)."
    )
    e_invoice_registry_since: date | None = None


class LookupResult(BaseModel):
    companies: list[CompanyRecord] = Field(default_factory=list)
    not_found: list[int] = Field(default_factory=list)
    cached: int = Field(default=0, description="Answers read from the cache, not from ANAF.")
    requests: int = Field(default=0, description="Requests sent to ANAF.")


def _date(value: Any) -> date | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _address(raw: Any, p: str) -> Address:
    raw = raw if isinstance(raw, dict) else {}

    def get(name: str) -> str:
        return str(raw.get(f"{p}{name}") or "")

    return Address(
        street=get("denumire_Strada"),
        number=get("numar_Strada"),
        locality=get("denumire_Localitate"),
        county=get("denumire_Judet"),
        county_code=get("cod_JudetAuto"),
        country=get("tara"),
        details=get("detalii_Adresa"),
        postal_code=get("cod_Postal"),
    )


def _periods(raw: Any) -> list[VatPeriod]:
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
    return [
        VatPeriod(
            start=_date(p.get("data_inceput_ScpTVA")),
            end=_date(p.get("data_sfarsit_ScpTVA")),
            cancelled_on=_date(p.get("data_anul_imp_ScpTVA")),
            message=str(p.get("mesaj_ScpTVA") or ""),
        )
        for p in items
        if isinstance(p, dict)
    ]


def parse_company(found: dict[str, Any], as_of: date) -> CompanyRecord:
    """One ``found`` entry of a v9 answer as a ``CompanyRecord``."""
    general = found.get("date_generale") or {}
    vat = found.get("inregistrare_scop_Tva") or {}
    rtvai = found.get("inregistrare_RTVAI") or {}
    inactive = found.get("stare_inactiv") or {}
    split = found.get("inregistrare_SplitTVA") or {}
    return CompanyRecord(
        cui=int(general["cui"]),
        as_of=_date(general.get("data")) or as_of,
        name=str(general.get("denumire") or ""),
        address=str(general.get("adresa") or ""),
        registered_office=_address(found.get("adresa_sediu_social"), "s"),
        fiscal_domicile=_address(found.get("adresa_domiciliu_fiscal"), "d"),
        registration_number=str(general.get("nrRegCom") or ""),
        registration_status=str(general.get("stare_inregistrare") or ""),
        registration_date=_date(general.get("data_inregistrare")),
        caen_code=str(general.get("cod_CAEN") or ""),
        legal_form=str(general.get("forma_juridica") or ""),
        fiscal_office=str(general.get("organFiscalCompetent") or ""),
        vat_registered=bool(vat.get("scpTVA")),
        vat_periods=_periods(vat.get("perioade_TVA")),
        vat_on_collection=bool(rtvai.get("statusTvaIncasare")),
        vat_on_collection_since=_date(rtvai.get("dataInceputTvaInc")),
        split_vat=bool(split.get("statusSplitTVA")),
        split_vat_since=_date(split.get("dataInceputSplitTVA")),
        inactive=bool(inactive.get("statusInactivi")),
        inactive_since=_date(inactive.get("dataInactivare")),
        reactivated_on=_date(inactive.get("dataReactivare")),
        deregistered_on=_date(inactive.get("dataRadiere")),
        e_invoice_registry=bool(general.get("statusRO_e_Factura")),
        e_invoice_registry_since=_date(general.get("data_inreg_Reg_RO_e_Factura")),
    )


class TaxpayerLookup:
    """``await lookup.lookup([18547290, ...], date.today())``: any number of CUIs, sent in
    chunks of 100 at the cluster-wide pace, answers cached per (CUI, date)."""

    def __init__(
        self, http: AnafHttp, redis: aioredis.Redis, prefix: str, cache_ttl_s: int = 24 * 3600
    ) -> None:
        self.http = http
        self.redis: Any = redis  # decode_responses=True: replies are str
        self.keys = RedisKeys(prefix)
        self.cache_ttl_s = cache_ttl_s

    @classmethod
    def from_settings(cls, settings: Settings, redis: aioredis.Redis) -> TaxpayerLookup:
        limiter = RedisRateLimiter(
            redis, RedisKeys(settings.redis_prefix).anaf_rate("public"), PUBLIC_LOOKUP_RATE,
            from_answer=True,  # ANAF counts arrivals: a second from each answer, too
        )
        http = AnafHttp(
            settings.anaf_public_url,
            timeout_s=settings.anaf_timeout_s,
            keepalive=False,
            limiters=[limiter],
        )
        return cls(http, redis, settings.redis_prefix, settings.anaf_lookup_cache_ttl_s)

    async def aclose(self) -> None:
        await self.http.aclose()

    def _key(self, cui: int, on: date) -> str:
        return self.keys.anaf_taxpayer(on.isoformat(), cui)

    async def lookup(
        self, cuis: Sequence[int], on: date, progress: ProgressCallback | None = None
    ) -> LookupResult:
        """Look up valid, distinct CUIs; ``progress(done, total)`` after each chunk."""
        result = LookupResult()
        missing = await self._from_cache(list(dict.fromkeys(cuis)), on, result)
        total = len(result.companies) + len(result.not_found) + len(missing)
        done = total - len(missing)
        if progress is not None:
            await progress(done, total)
        for start in range(0, len(missing), MAX_CUIS_PER_REQUEST):
            chunk = missing[start : start + MAX_CUIS_PER_REQUEST]
            companies, not_found = await self.fetch(chunk, on)
            result.requests += 1
            result.companies.extend(companies)
            result.not_found.extend(not_found)
            await self._store(companies, not_found, on)
            done += len(chunk)
            if progress is not None:
                await progress(done, total)
        return result

    async def fetch(self, cuis: Sequence[int], on: date) -> tuple[list[CompanyRecord], list[int]]:
        """One request to ANAF (≤ 100 CUIs), no cache: companies found and CUIs not found."""
        if not 1 <= len(cuis) <= MAX_CUIS_PER_REQUEST:
            raise ValueError(f"one v9 request takes 1 to {MAX_CUIS_PER_REQUEST} CUIs")
        body = [{"cui": cui, "data": on.isoformat()} for cui in cuis]
        response = await self.http.request("POST", V9_PATH, json=body)
        try:
            answer = response.json()
            found = [parse_company(f, on) for f in answer.get("found") or []]
            not_found = [int(c) for c in answer.get("notFound") or []]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AnafRejected(
                f"ANAF {V9_PATH}: unreadable answer ({type(exc).__name__})",
                status=response.status_code,
            ) from exc
        asked = set(cuis)
        return [c for c in found if c.cui in asked], [c for c in not_found if c in asked]

    async def _from_cache(self, cuis: list[int], on: date, result: LookupResult) -> list[int]:
        if not cuis or self.cache_ttl_s <= 0:
            return cuis
        values = await self.redis.mget([self._key(c, on) for c in cuis])
        missing = []
        for cui, raw in zip(cuis, values, strict=True):
            if raw is None:
                missing.append(cui)
                continue
            result.cached += 1
            data = json.loads(raw)
            if data is None:
                result.not_found.append(cui)
            else:
                result.companies.append(CompanyRecord.model_validate(data))
        return missing

    async def _store(self, companies: list[CompanyRecord], not_found: list[int], on: date) -> None:
        if self.cache_ttl_s <= 0:
            return
        pipe = self.redis.pipeline(transaction=False)
        for company in companies:
            pipe.set(self._key(company.cui, on), company.model_dump_json(), ex=self.cache_ttl_s)
        for cui in not_found:
            pipe.set(self._key(cui, on), "null", ex=min(self.cache_ttl_s, NOT_FOUND_TTL_S))
        await pipe.execute()
