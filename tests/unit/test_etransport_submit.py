"""e-Transport upload at most once per shipment, polling to ok, the lost-answer lookup.

The production client against the ANAF sandbox over real HTTP, real Redis. The sandbox's
verdict comes from a small rule of the test's (``REJECT`` in the XML → ``nok``), so these run
without the official schemas.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from workers_core.config import Settings
from workers_core.errors import NonRetryable, Retry
from workers_core.etransport import Declaration, build_xml, uit_is_valid
from workers_core.etransport.submission import (
    DeclarationSubmitter,
    ShipmentIdentity,
    identify,
    with_ref,
)
from workers_core.integrations.anaf.errors import AnafRejected
from workers_core.integrations.anaf.etransport import EtransportClient
from workers_core.integrations.anaf.oauth import AnafOAuth
from workers_core.jobs.side_effects import SideEffectLedger
from workers_core.jobs.store import JobStore
from workers_core.sandbox.anaf import AnafSandbox, ScriptedFailure

DATA = Path(__file__).parent.parent / "data" / "etransport"
UPLOAD = "/test/ETRANSPORT/ws/v1/upload"
CIF = 18547290


def _reject_marked(xml: bytes) -> list[str]:
    return ["[BR-999] sandbox: the test marked this declaration"] if b"REJECT" in xml else []


def shipment(key: str, goods_name: str | None = None) -> tuple[bytes, ShipmentIdentity]:
    data: dict[str, Any] = json.loads((DATA / "declaration.json").read_text(encoding="utf-8"))
    data.pop("ref")  # ours, derived from the shipment key
    if goods_name:
        data["notification"]["goods"][0]["name"] = goods_name
    declaration = with_ref(Declaration.model_validate(data), key)
    xml = build_xml(declaration)
    return xml, identify(declaration, xml, key)


@pytest.fixture
def anaf() -> Iterator[AnafSandbox]:
    with AnafSandbox() as sandbox:
        sandbox.state.etransport.check = _reject_marked
        sandbox.state.etransport.processing_s = 0.2
        yield sandbox


@pytest.fixture
async def client(settings: Settings, anaf: AnafSandbox, store: JobStore) -> AsyncIterator[Any]:
    anaf_settings = Settings.model_validate(
        {
            **settings.model_dump(),
            "anaf_api_url": anaf.url,
            "anaf_oauth_url": anaf.url,
            "anaf_client_id": anaf.client_id,
            "anaf_client_secret": anaf.client_secret,
            "anaf_timeout_s": 1.0,
        }
    )
    login = AnafOAuth.from_settings(anaf_settings, store.redis)
    await login.exchange_code(anaf.issue_code(login.redirect_uri))
    await login.aclose()
    etransport = EtransportClient.from_settings(anaf_settings, store.redis)
    yield etransport
    await etransport.aclose()


def submitter_for(
    client: EtransportClient, store: JobStore, grace_s: float = 30.0
) -> DeclarationSubmitter:
    return DeclarationSubmitter(
        client,
        SideEffectLedger(store.redis, store.keys.prefix, 3600),
        poll_first_s=0.05,
        poll_max_interval_s=0.2,
        poll_in_job_s=5.0,
        lookup_grace_s=grace_s,
        lookup_retry_s=0.1,
    )


async def test_upload_is_in_processing_then_ok_and_returns_a_valid_uit(
    client: EtransportClient, store: JobStore, anaf: AnafSandbox
) -> None:
    submitter = submitter_for(client, store)
    xml, ship = shipment("order-1")
    upload = await submitter.upload_once(xml, ship, CIF, attempt=1)
    assert uit_is_valid(upload.uit) and not upload.reused
    seen: list[str] = []

    async def record(status: Any) -> None:
        seen.append(status.state)

    status = await submitter.poll(upload.index, record)
    assert seen == ["in prelucrare", "ok"] and status.errors == []
    assert anaf.state.etransport.uploads[upload.index].uit == upload.uit


async def test_a_replayed_shipment_is_uploaded_once_and_gets_the_same_uit(
    client: EtransportClient, store: JobStore, anaf: AnafSandbox
) -> None:
    submitter = submitter_for(client, store)
    xml, ship = shipment("order-2")
    first = await submitter.upload_once(xml, ship, CIF, attempt=1)
    again = await submitter.upload_once(xml, ship, CIF, attempt=2)
    assert (again.index, again.uit, again.reused) == (first.index, first.uit, True)
    assert anaf.state.etransport.uploads_of(CIF, ship.ref) == 1


async def test_a_lost_upload_answer_is_found_in_the_list_not_uploaded_again(
    client: EtransportClient, store: JobStore, anaf: AnafSandbox
) -> None:
    submitter = submitter_for(client, store)
    xml, ship = shipment("order-3")
    # ANAF registers the upload; its answer comes after the client's 1 s timeout.
    anaf.fail_next(ScriptedFailure(act_first=True, delay_s=2.5, route=UPLOAD))
    with pytest.raises(Retry, match="looks for it in the e-Transport list"):
        await submitter.upload_once(xml, ship, CIF, attempt=1)
    assert anaf.state.etransport.uploads_of(CIF, ship.ref) == 1
    await asyncio.sleep(0.3)  # ANAF processes it (processing_s) and lists it
    found = await submitter.upload_once(xml, ship, CIF, attempt=2)
    assert found.reused and found.found_by_lookup
    registered = anaf.state.etransport.uploads[found.index]
    assert found.uit == registered.uit
    assert anaf.state.etransport.uploads_of(CIF, ship.ref) == 1
    assert (await submitter.poll(found.index)).state == "ok"


async def test_an_upload_that_never_arrived_is_sent_again_only_after_the_grace(
    client: EtransportClient, store: JobStore, anaf: AnafSandbox
) -> None:
    submitter = submitter_for(client, store, grace_s=1.0)
    xml, ship = shipment("order-4")
    anaf.fail_next(ScriptedFailure(drop=True, route=UPLOAD))  # lost before ANAF acted
    with pytest.raises(Retry):
        await submitter.upload_once(xml, ship, CIF, attempt=1)
    with pytest.raises(Retry, match="not in the e-Transport list yet"):
        await submitter.upload_once(xml, ship, CIF, attempt=2)
    assert anaf.state.etransport.uploads_of(CIF, ship.ref) == 0
    await asyncio.sleep(1.1)
    sent = await submitter.upload_once(xml, ship, CIF, attempt=3)
    assert not sent.reused
    assert anaf.state.etransport.uploads_of(CIF, ship.ref) == 1


async def test_nok_carries_anaf_errors_and_frees_the_shipment_for_a_correction(
    client: EtransportClient, store: JobStore, anaf: AnafSandbox
) -> None:
    submitter = submitter_for(client, store)
    bad, ship = shipment("order-5", goods_name="REJECT me")
    upload = await submitter.upload_once(bad, ship, CIF, attempt=1)
    status = await submitter.poll(upload.index)
    assert status.state == "nok" and "[BR-999]" in status.errors[0]
    await submitter.release(ship)
    fixed, fixed_ship = shipment("order-5")
    again = await submitter.upload_once(fixed, fixed_ship, CIF, attempt=1)
    assert not again.reused and again.index != upload.index


async def test_other_content_under_a_declared_shipment_key_is_refused(
    client: EtransportClient, store: JobStore, anaf: AnafSandbox
) -> None:
    submitter = submitter_for(client, store)
    xml, ship = shipment("order-6")
    await submitter.upload_once(xml, ship, CIF, attempt=1)
    other, other_ship = shipment("order-6", goods_name="Altceva")
    with pytest.raises(NonRetryable, match="different content"):
        await submitter.upload_once(other, other_ship, CIF, attempt=1)
    assert anaf.state.etransport.uploads_of(CIF, ship.ref) == 1


async def test_a_refused_upload_releases_its_claim(
    client: EtransportClient, store: JobStore, anaf: AnafSandbox
) -> None:
    anaf.state.etransport.authorised_cifs = {1}
    submitter = submitter_for(client, store)
    xml, ship = shipment("order-7")
    with pytest.raises(AnafRejected, match="Nu aveti drept in SPV"):
        await submitter.upload_once(xml, ship, CIF, attempt=1)
    ledger = SideEffectLedger(store.redis, store.keys.prefix, 3600)
    assert await ledger.claim(ship.effect_key(), 9) is None


async def test_the_list_shows_the_declaration_with_its_uit_and_ref(
    client: EtransportClient, store: JobStore, anaf: AnafSandbox
) -> None:
    submitter = submitter_for(client, store)
    assert await client.messages(CIF, 1) == []  # ANAF's "Nu exista mesaje" is no error
    xml, ship = shipment("order-8")
    upload = await submitter.upload_once(xml, ship, CIF, attempt=1)
    await submitter.poll(upload.index)
    (row,) = await client.messages(CIF, 1)
    assert (row.kind, row.state, row.uit, row.ref, row.upload_index) == (
        "NOT",
        "OK",
        upload.uit,
        ship.ref,
        upload.index,
    )
