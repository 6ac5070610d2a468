"""taxpayer.validate against the ANAF sandbox (real HTTP) and real Redis, without Ray."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date

import pytest

from workers_core.config import Settings
from workers_core.errors import Retry
from workers_core.integrations.anaf.cui import with_check_digit
from workers_core.integrations.anaf.errors import AnafUnavailable, AnafWafRejected
from workers_core.integrations.anaf.taxpayer import parse_company
from workers_core.jobs.progress import ProgressRecorder
from workers_core.jobs.side_effects import SideEffectLedger
from workers_core.jobs.store import JobStore
from workers_core.sandbox.anaf import AnafSandbox, ScriptedFailure, company
from workers_core.tasks.anaf_taxpayer import TaxpayerPayload, ValidateTaxpayers
from workers_core.tasks.base import JobContext

ON = date(2025, 6, 2)
UNKNOWN = with_check_digit(5555555)


@pytest.fixture
def anaf() -> Iterator[AnafSandbox]:
    # One per test: the sandbox's 1 req/s limit must not carry over between tests.
    with AnafSandbox() as sandbox:
        yield sandbox


@pytest.fixture
async def task(settings: Settings, anaf: AnafSandbox) -> AsyncIterator[ValidateTaxpayers]:
    s = Settings.model_validate(
        {**settings.model_dump(), "anaf_public_url": anaf.public_url, "anaf_timeout_s": 5.0}
    )
    t = ValidateTaxpayers(s)
    await t.setup()
    yield t
    await t.close()


def context(task: ValidateTaxpayers, store: JobStore, job_id: str) -> JobContext:
    s = task.settings
    return JobContext(
        job_id=job_id,
        task=task.name,
        queue=task.queue,
        attempt=1,
        max_attempts=5,
        correlation_id=None,
        settings=s,
        side_effects=SideEffectLedger(store.redis, s.redis_prefix, 3600),
        progress=ProgressRecorder(store.redis, store.keys, job_id, 3600),
    )


def payload(*cuis: str | int) -> TaxpayerPayload:
    return TaxpayerPayload(cuis=[str(c) for c in cuis], date=ON)


async def test_a_batch_reports_companies_not_found_and_invalid_cuis(
    task: ValidateTaxpayers, store: JobStore, anaf: AnafSandbox
) -> None:
    result = await task.run(
        payload("RO18547290", "4264242", "27193515", "ro 18547290", "12345678", "abc", UNKNOWN),
        context(task, store, "j1"),
    )
    by_cui = {c.cui: c for c in result.companies}
    assert set(by_cui) == {18547290, 4264242, 27193515}
    assert by_cui[18547290].e_invoice_registry and by_cui[18547290].vat_registered
    assert by_cui[4264242].inactive and by_cui[4264242].inactive_since == date(2023, 5, 10)
    assert by_cui[27193515].split_vat and by_cui[27193515].vat_on_collection
    assert by_cui[27193515].registered_office.county_code == "TM"
    assert by_cui[18547290].as_of == ON
    assert result.not_found == [UNKNOWN]
    assert [(i.input, i.reason) for i in result.invalid] == [
        ("12345678", "wrong check digit"),
        ("abc", "not a number"),
    ]
    assert (result.requests, result.cached) == (1, 0)
    [call] = anaf.lookups
    assert call.cuis == 4  # duplicates and invalid CUIs never reach ANAF
    progress = await store.redis.hgetall(f"{task.settings.redis_prefix}:progress:j1")
    assert (progress["done"], progress["total"]) == ("4", "4")


async def test_the_second_lookup_is_served_from_the_cache(
    task: ValidateTaxpayers, store: JobStore, anaf: AnafSandbox
) -> None:
    await task.run(payload(18547290, UNKNOWN), context(task, store, "j2"))
    again = await task.run(payload(18547290, UNKNOWN), context(task, store, "j3"))
    assert (again.cached, again.requests) == (2, 0)
    assert [c.cui for c in again.companies] == [18547290] and again.not_found == [UNKNOWN]
    assert anaf.requests == 1


async def test_a_waf_page_is_a_typed_retryable_error(
    task: ValidateTaxpayers, store: JobStore, anaf: AnafSandbox
) -> None:
    anaf.fail_next(ScriptedFailure(waf=True))
    with pytest.raises(AnafWafRejected) as info:
        await task.run(payload(18547290), context(task, store, "j4"))
    assert isinstance(info.value, Retry) and info.value.support_id
    assert anaf.requests == 1  # a firewall block is not hammered


async def test_a_5xx_is_retried_then_succeeds(
    task: ValidateTaxpayers, store: JobStore, anaf: AnafSandbox
) -> None:
    anaf.fail_next(ScriptedFailure(status=503, retry_after_s=0))
    result = await task.run(payload(18547290), context(task, store, "j5"))
    assert [c.cui for c in result.companies] == [18547290] and anaf.requests == 2


async def test_429_retry_after_is_honoured(
    task: ValidateTaxpayers, store: JobStore, anaf: AnafSandbox
) -> None:
    anaf.fail_next(ScriptedFailure(status=429, retry_after_s=1))
    started = time.monotonic()
    result = await task.run(payload(18547290), context(task, store, "j6"))
    assert time.monotonic() - started >= 1.0 and len(result.companies) == 1


async def test_a_dropped_connection_is_retried_for_the_lookup(
    task: ValidateTaxpayers, store: JobStore, anaf: AnafSandbox
) -> None:
    anaf.fail_next(ScriptedFailure(drop=True))
    result = await task.run(payload(18547290), context(task, store, "j7"))
    assert len(result.companies) == 1 and anaf.requests == 2


async def test_a_host_that_keeps_failing_ends_in_a_retryable_error(
    task: ValidateTaxpayers, store: JobStore, anaf: AnafSandbox
) -> None:
    anaf.fail_next(*[ScriptedFailure(status=502, retry_after_s=0)] * 4)
    with pytest.raises(AnafUnavailable, match="502"):
        await task.run(payload(18547290), context(task, store, "j8"))
    assert anaf.requests == 4


async def test_a_thousand_cuis_go_as_ten_requests_a_second_apart(
    task: ValidateTaxpayers, store: JobStore, anaf: AnafSandbox
) -> None:
    cuis = [with_check_digit(2_000_000 + i) for i in range(1000)]
    result = await task.run(payload(*cuis), context(task, store, "j9"))
    # On a loaded machine one request can reach the sandbox a little early after a slow
    # predecessor and be refused with 429 (then retried): count what ANAF served.
    calls = [c for c in anaf.lookups if c.status == 200]
    assert [c.cuis for c in calls] == [100] * 10
    assert len(anaf.lookups) <= 12
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 0.98, gaps  # a lower bound: a slow machine only widens the gaps
    assert len(result.not_found) == 1000


def test_a_single_vat_period_object_is_read_like_the_array() -> None:
    # doc_WS_V9.txt draws perioade_TVA as one object; live answers send an array.
    raw = company(18547290, "X SRL")
    raw["inregistrare_scop_Tva"]["perioade_TVA"] = raw["inregistrare_scop_Tva"]["perioade_TVA"][0]
    raw["date_generale"]["data"] = "2025-06-02"
    record = parse_company(raw, ON)
    assert [p.start for p in record.vat_periods] == [date(2012, 11, 1)]
    assert record.registration_date == date(2012, 10, 26) and record.deregistered_on is None
