"""taxpayer.validate: check up to 10,000 CUIs against ANAF's registers (v9 lookup).

Invalid CUIs (check digit) are reported without asking ANAF. The rest go in chunks of 100 at
1 request/s for the whole cluster, so a 10,000-CUI job paces itself over ~2 minutes. Every
answer is cached per (CUI, date) as it arrives, so a retried job resumes where it stopped.
Progress (CUIs done of total) is reported after each chunk through ``ctx.report_progress``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field

from workers_core.integrations.anaf.cui import InvalidCui, normalise_cui
from workers_core.integrations.anaf.http import ROMANIA
from workers_core.integrations.anaf.taxpayer import CompanyRecord, TaxpayerLookup
from workers_core.jobs.retry import RetryPolicy
from workers_core.tasks.base import Health, JobContext, Resources, Task

MAX_CUIS = 10_000


class TaxpayerPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cuis: list[str] = Field(
        min_length=1, max_length=MAX_CUIS, description='Fiscal codes, with or without "RO".'
    )
    date: dt.date | None = Field(
        default=None, description="Registers as of; default: today in Romania (Europe/Bucharest)."
    )


class InvalidEntry(BaseModel):
    input: str
    reason: str


class TaxpayerResult(BaseModel):
    date: dt.date
    companies: list[CompanyRecord]
    not_found: list[int]
    invalid: list[InvalidEntry]
    cached: int = Field(description="Answers from the 24 h cache, not from ANAF.")
    requests: int = Field(description="Requests sent to ANAF by this attempt.")


def today_in_romania() -> dt.date:
    return dt.datetime.now(ROMANIA).date()


class ValidateTaxpayers(Task[TaxpayerPayload, TaxpayerResult]):
    """VAT, VAT on collection, split VAT, inactive and e-Factura register status per CUI."""

    name = "taxpayer.validate"
    queue = "anaf.taxpayer"
    Payload = TaxpayerPayload
    Result = TaxpayerResult
    resources = Resources(num_cpus=0.1)
    concurrency = 4  # they wait on the shared 1 req/s limiter, not on the CPU
    time_limit_s = 1800.0  # 100 requests at 1/s plus ANAF's slow answers
    retry = RetryPolicy(max_attempts=5, backoff_base_s=10, backoff_max_s=600)

    async def setup(self) -> None:
        self.redis: Any = aioredis.from_url(self.settings.redis_url, **self.settings.redis_kwargs())
        self.lookup = TaxpayerLookup.from_settings(self.settings, self.redis)

    async def close(self) -> None:
        await self.lookup.aclose()
        await self.redis.aclose()

    async def health(self) -> Health:
        """Redis answers and ANAF's host accepts a connection (no request: every call
        spends the cluster's 1 req/s)."""
        from workers_core.registry.probes import check_endpoint

        anaf = await check_endpoint(self.settings.anaf_public_url,
                                    self.settings.health_check_timeout_s)
        try:
            await self.redis.ping()
        except Exception as exc:
            return Health(ok=False, checks={"redis": f"error: {type(exc).__name__}",
                                            "anaf": anaf})
        return Health(ok=anaf.startswith("ok"), checks={"redis": "ok", "anaf": anaf})

    async def run(self, payload: TaxpayerPayload, ctx: JobContext) -> TaxpayerResult:
        on = payload.date or today_in_romania()
        valid: list[int] = []
        invalid: list[InvalidEntry] = []
        for text in payload.cuis:
            try:
                valid.append(normalise_cui(text))
            except InvalidCui as exc:
                invalid.append(InvalidEntry(input=text, reason=exc.reason))
        found = await self.lookup.lookup(valid, on, progress=ctx.report_progress)
        ctx.log.info(
            "taxpayer.validated",
            companies=len(found.companies),
            not_found=len(found.not_found),
            invalid=len(invalid),
            cached=found.cached,
            requests=found.requests,
        )
        return TaxpayerResult(
            date=on,
            companies=found.companies,
            not_found=found.not_found,
            invalid=invalid,
            cached=found.cached,
            requests=found.requests,
        )
