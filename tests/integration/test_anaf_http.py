"""ANAF jobs through the platform (HTTP → Redis → Ray pool) against the ANAF sandbox.

The e-Factura tests need the official schemas (the submit job validates before it uploads;
the sandbox judges uploads with the same rules) and skip, saying so, without them.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.integration.conftest import Platform
from workers_core.efactura import Invoice, build_xml
from workers_core.integrations.anaf.cui import with_check_digit
from workers_core.integrations.anaf.oauth import AnafOAuth
from workers_core.sandbox.anaf import AnafSandbox, ScriptedFailure

DATA = Path(__file__).parent.parent / "data" / "efactura"
SELLER = 18547290


async def _login(platform: Platform, anaf: AnafSandbox) -> None:
    redis = aioredis.from_url(platform.settings.redis_url)
    oauth = AnafOAuth.from_settings(platform.settings, redis)
    try:
        await oauth.exchange_code(anaf.issue_code(oauth.redirect_uri))
    finally:
        await oauth.aclose()
        await redis.aclose()


@pytest.fixture(scope="module")
def anaf(platform: Platform, anaf_sandbox: AnafSandbox) -> Iterator[AnafSandbox]:
    """The sandbox with this platform authorised (what `workers-core anaf login` leaves)."""
    asyncio.run(_login(platform, anaf_sandbox))
    yield anaf_sandbox


def invoice(number: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "invoice.json").read_text(encoding="utf-8"))
    data = copy.deepcopy(data)
    data.update(number=number, **changes)
    return data


def test_taxpayer_batch_reports_companies_not_found_and_invalid(
    platform: Platform, anaf: AnafSandbox
) -> None:
    missing = with_check_digit(7654321)
    job_id = platform.submit(
        "taxpayer.validate", {"cuis": ["RO18547290", str(missing), "18547291"]}
    )
    job = platform.wait_done(job_id, timeout_s=60)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert [c["cui"] for c in result["companies"]] == [SELLER]
    assert result["not_found"] == [missing]
    assert [i["input"] for i in result["invalid"]] == ["18547291"]


def test_an_invoice_from_json_goes_to_ok_with_a_verified_signed_zip(
    platform: Platform, anaf: AnafSandbox, schemas: Path
) -> None:
    job_id = platform.submit("efactura.submit", {"invoice": invoice("IT-100")})
    job = platform.wait_done(job_id, timeout_s=90)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["state"] == "ok"
    assert result["states_seen"] == ["in prelucrare", "ok"]
    assert result["signature"]["valid"] and result["signature"]["pinned"]
    assert not result["reused_upload"]
    zipped = platform.http.get(f"/v1/artifacts/{result['zip_artifact_id']}")
    assert zipped.status_code == 200 and zipped.content.startswith(b"PK")
    assert zipped.headers["content-type"] == "application/zip"
    assert anaf.efactura.uploads_of(SELLER, "IT-100") == 1


def test_an_invalid_invoice_is_rejected_locally_with_the_rule_id(
    platform: Platform, anaf: AnafSandbox, schemas: Path
) -> None:
    data = invoice("IT-200")
    data["supplier"]["address"]["city"] = "Bucuresti"  # BR-RO-100: a sector, SECTOR1-6
    # The JSON model knows the rule: a 422 at the door, before anything is queued.
    resp = platform.http.post(
        "/v1/jobs", json={"task": "efactura.submit", "payload": {"invoice": data}}
    )
    assert resp.status_code == 422 and "BR-RO-100" in resp.text
    # Ready XML is judged by the XSD + Schematron in the job, before any upload.
    xml = build_xml(Invoice.model_validate(invoice("IT-200"))).replace(b"SECTOR3", b"Bucuresti")
    stored = platform.http.post(
        "/v1/artifacts", content=xml, headers={"Content-Type": "application/xml"}
    )
    assert stored.status_code == 201, stored.text
    payload = {"xml_artifact_id": stored.json()["id"]}
    job = platform.wait_done(platform.submit("efactura.submit", payload), 60)
    assert job["status"] == "failed", job
    assert "BR-RO-100" in job["error"]["message"]
    assert "nothing was sent to ANAF" in job["error"]["message"]
    assert job["attempts"] == 1
    assert anaf.efactura.uploads_of(SELLER, "IT-200") == 0


def test_a_nok_from_anaf_returns_its_errors(
    platform: Platform, anaf: AnafSandbox, schemas: Path
) -> None:
    real_rules = anaf.efactura.check

    def stricter(xml: bytes) -> list[str]:  # ANAF checks more than the published rules
        extra = (
            ["E: [BR-RO-SANDBOX] cif_beneficiar nu este inregistrat"] if b"IT-300" in xml else []
        )
        return (real_rules(xml) if real_rules else []) + extra

    anaf.efactura.check = stricter
    try:
        job = platform.wait_done(
            platform.submit("efactura.submit", {"invoice": invoice("IT-300")}), 90
        )
    finally:
        anaf.efactura.check = real_rules
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["state"] == "nok"
    assert [e["rule_id"] for e in result["errors"]] == ["BR-RO-SANDBOX"]
    assert result["signature"]["valid"]


def test_a_timeout_during_upload_then_the_retry_uploads_exactly_once(
    platform: Platform, anaf: AnafSandbox, schemas: Path
) -> None:
    # ANAF records the upload, and answers after the platform's 3 s timeout.
    anaf.fail_next(ScriptedFailure(act_first=True, delay_s=5.0, route="/test/FCTEL/rest/upload"))
    job_id = platform.submit("efactura.submit", {"invoice": invoice("IT-400")})
    job = platform.wait_done(job_id, timeout_s=120)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["state"] == "ok"
    assert result["found_by_lookup"] and result["reused_upload"]
    assert job["attempts"] >= 2
    assert anaf.efactura.uploads_of(SELLER, "IT-400") == 1


def test_a_replayed_submission_does_not_upload_again(
    platform: Platform, anaf: AnafSandbox, schemas: Path
) -> None:
    payload = {"invoice": invoice("IT-500"), "wait": False}
    first = platform.wait_done(platform.submit("efactura.submit", payload), 60)
    second = platform.wait_done(platform.submit("efactura.submit", payload), 60)
    assert first["status"] == second["status"] == "succeeded"
    assert second["result"]["upload_index"] == first["result"]["upload_index"]
    assert second["result"]["reused_upload"] and not first["result"]["reused_upload"]
    assert anaf.efactura.uploads_of(SELLER, "IT-500") == 1


def test_inbox_status_download_and_pdf_jobs(
    platform: Platform, anaf: AnafSandbox, schemas: Path
) -> None:
    sent = platform.wait_done(
        platform.submit("efactura.submit", {"invoice": invoice("IT-600")}), 90
    )
    assert sent["status"] == "succeeded", sent
    index, download_id = sent["result"]["upload_index"], sent["result"]["download_id"]

    status = platform.wait_done(platform.submit("efactura.status", {"upload_index": index}), 30)
    assert status["result"] == {"upload_index": index, "state": "ok", "download_id": download_id}

    buyer = invoice("IT-600")["customer"]["tax_id"]
    time.sleep(5.5)  # the inbox asks up to 5 s ago: ANAF refuses an endTime in its future
    inbox = platform.wait_done(
        platform.submit("efactura.inbox", {"cif": buyer, "days": 1, "filter": "P"}), 30
    )
    assert inbox["status"] == "succeeded", inbox
    assert index in [m["upload_index"] for m in inbox["result"]["messages"]]

    download = platform.wait_done(
        platform.submit("efactura.download", {"download_id": download_id}), 30
    )
    assert download["status"] == "succeeded", download
    assert download["result"]["signature"]["valid"]
    assert download["result"]["document_name"] == f"{index}.xml"

    pdf = platform.wait_done(platform.submit("efactura.pdf", {"invoice": invoice("IT-600")}), 30)
    assert pdf["status"] == "succeeded", pdf
    body = platform.http.get(f"/v1/artifacts/{pdf['result']['pdf_artifact_id']}")
    assert body.content.startswith(b"%PDF-")


def test_efactura_payloads_are_checked_at_the_door(platform: Platform) -> None:
    both = {"invoice": invoice("IT-700"), "xml_artifact_id": "art_abc"}
    resp = platform.http.post("/v1/jobs", json={"task": "efactura.submit", "payload": both})
    assert resp.status_code == 422
    assert "exactly one of invoice, xml_artifact_id" in resp.text
    resp = platform.http.post(
        "/v1/jobs", json={"task": "efactura.inbox", "payload": {"cif": "1", "days": 61}}
    )
    assert resp.status_code == 422 and "days" in resp.text


def test_an_etransport_declaration_gets_a_uit_once(
    platform: Platform, anaf: AnafSandbox, schemas: Path
) -> None:
    data_dir = Path(__file__).parent.parent / "data" / "etransport"
    declaration = json.loads((data_dir / "declaration.json").read_text(encoding="utf-8"))
    payload = {"declaration": declaration, "shipment_key": "IT-LIVRARE-1"}
    first = platform.wait_done(platform.submit("etransport.submit", payload), 90)
    assert first["status"] == "succeeded", first
    result = first["result"]
    assert result["state"] == "ok" and len(result["uit"]) == 16
    assert result["states_seen"][-1] == "ok"
    again = platform.wait_done(platform.submit("etransport.submit", payload), 60)
    assert again["status"] == "succeeded", again
    assert again["result"]["uit"] == result["uit"] and again["result"]["reused_upload"]
    status = platform.wait_done(
        platform.submit("etransport.status", {"upload_index": result["upload_index"]}), 30
    )
    assert status["result"]["state"] == "ok"


def test_a_thousand_cuis_through_the_platform_pace_at_one_request_a_second(
    platform: Platform, anaf: AnafSandbox
) -> None:
    started = time.monotonic()
    cuis = [str(with_check_digit(3_000_000 + i)) for i in range(1000)]
    job_id = platform.submit("taxpayer.validate", {"cuis": cuis})
    seen_progress = []
    while (job := platform.job(job_id, wait_s=1))["status"] not in ("succeeded", "failed", "dead"):
        if job.get("progress"):
            seen_progress.append(job["progress"]["done"])
    assert job["status"] == "succeeded", job
    assert len(job["result"]["not_found"]) == 1000
    assert job["progress"] == {**job["progress"], "done": 1000, "total": 1000}
    assert any(0 < done < 1000 for done in seen_progress), seen_progress  # it reported along
    served = [c for c in anaf.lookups if c.at >= started and c.status == 200]
    assert [c.cuis for c in served] == [100] * 10
    gaps = [b.at - a.at for a, b in itertools.pairwise(served)]
    assert min(gaps) >= 0.98, gaps  # a lower bound: a slow machine only widens the gaps
    assert all(c.status != 429 for c in anaf.lookups if c.at >= started)
