"""REGES-ONLINE through the platform: gateway → queue ``reges`` → the REGES sandbox."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Platform
from workers_core.sandbox.reges import RegesSandbox

DATA = Path(__file__).parent.parent / "data" / "reges"

pytestmark = pytest.mark.slow


def contract(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "contract.json").read_text(encoding="utf-8"))
    data["header"]["message_id"] = str(uuid.uuid4())
    return {**data, **changes}


def test_contract_submission_succeeds_with_its_ref(
    platform: Platform, reges_sandbox: RegesSandbox, schemas: Path
) -> None:
    message = contract()
    job = platform.wait_done(platform.submit("reges.submit", {"message": message}), 60)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["state"] == "succeeded" and result["operation"] == "AdaugareContract"
    assert len(result["refs"]) == 1 and result["results"][0]["code"] == "SUCCES"
    assert reges_sandbox.received(message["header"]["message_id"]) == 1


def test_message_failing_the_xsd_fails_naming_the_error(
    platform: Platform, reges_sandbox: RegesSandbox, schemas: Path
) -> None:
    message = {
        "kind": "contract", "operation": "IncetareContract",
        "header": {"message_id": str(uuid.uuid4())}, "contract_ref": str(uuid.uuid4()),
        "action": {"kind": "termination", "legal_basis": "Art999",
                   "ended_on": "2025-11-01T00:00:00"},
    }
    job = platform.wait_done(platform.submit("reges.submit", {"message": message}), 60)
    assert job["status"] == "failed", job
    assert "reges.xsd" in job["error"]["message"] and "TemeiLegal" in job["error"]["message"]
    assert reges_sandbox.received(message["header"]["message_id"]) == 0


def test_replayed_submission_reaches_reges_once(
    platform: Platform, reges_sandbox: RegesSandbox, schemas: Path
) -> None:
    message = contract()
    first = platform.wait_done(platform.submit("reges.submit", {"message": message}), 60)
    replay = platform.wait_done(platform.submit("reges.submit", {"message": message}), 60)
    assert first["status"] == replay["status"] == "succeeded", (first, replay)
    assert replay["result"]["reused_send"] is True
    assert replay["result"]["refs"] == first["result"]["refs"]
    assert reges_sandbox.received(message["header"]["message_id"]) == 1


def test_status_by_message_id_after_success(
    platform: Platform, schemas: Path
) -> None:
    message = contract()
    done = platform.wait_done(platform.submit("reges.submit", {"message": message}), 60)
    assert done["status"] == "succeeded", done
    status = platform.wait_done(platform.submit(
        "reges.status", {"message_id": message["header"]["message_id"]}), 60)
    assert status["status"] == "succeeded", status
    assert status["result"]["state"] == "succeeded"
    assert status["result"]["refs"] == done["result"]["refs"]


def test_invalid_json_message_is_a_422_naming_the_field(platform: Platform) -> None:
    message = contract()
    message["content"]["salary"] = "a lot"
    resp = platform.http.post("/v1/jobs", json={"task": "reges.submit",
                                                "payload": {"message": message}})
    assert resp.status_code == 422, resp.text
    assert "salary" in resp.text
