"""REGES: the message model and XML, the client and the send-once flow against the REGES
sandbox over real HTTP, real Redis. XSD tests skip when the schemas are absent."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import TypeAdapter, ValidationError

from workers_core.config import Settings
from workers_core.errors import NonRetryable, Retry
from workers_core.integrations.reges import RegesClient
from workers_core.jobs.side_effects import SideEffectLedger
from workers_core.reges import RegesMessage, Sender, build_xml, validate
from workers_core.reges.errors import RegesLoginRefused, RegesRateLimited, RegesRejected
from workers_core.reges.results import ResultInbox
from workers_core.reges.submission import RegesSubmitter
from workers_core.reges.validate import MessageIdentity
from workers_core.sandbox.reges import RegesSandbox, ScriptedFailure

DATA = Path(__file__).parent.parent / "data" / "reges"
MESSAGES: TypeAdapter[Any] = TypeAdapter(RegesMessage)


def message(name: str = "contract", **header: Any) -> Any:
    data = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    data["header"]["message_id"] = str(uuid.uuid4())
    data["header"].update(header)
    return MESSAGES.validate_python(data)


@pytest.fixture
def reges() -> Iterator[RegesSandbox]:
    with RegesSandbox() as sandbox:
        sandbox.state.processing_s = 0.1
        yield sandbox


def client_for(sandbox: RegesSandbox, **overrides: Any) -> RegesClient:
    kwargs: dict[str, Any] = {
        "client_id": "reges-api", "client_secret": sandbox.client_secret,
        "username": sandbox.username, "password": sandbox.password, "timeout_s": 2.0,
    }
    return RegesClient(sandbox.url, sandbox.token_url, **(kwargs | overrides))


@pytest.fixture
async def client(reges: RegesSandbox) -> AsyncIterator[RegesClient]:
    c = client_for(reges)
    yield c
    await c.aclose()


@pytest.fixture
async def submitter(settings: Settings, client: RegesClient) -> AsyncIterator[RegesSubmitter]:
    redis = aioredis.from_url(settings.redis_url, decode_responses=True)
    yield RegesSubmitter(
        client, SideEffectLedger(redis, settings.redis_prefix, 3600),
        ResultInbox(redis, settings.redis_prefix, lock_ttl_s=10),
        poll_first_s=0.05, poll_max_interval_s=0.2, poll_in_job_s=5.0,
        lookup_grace_s=30.0, lookup_retry_s=0.1,
    )
    await redis.aclose()


def identity_of(msg: Any) -> MessageIdentity:
    return MessageIdentity(kind=msg.kind, operation=msg.operation,
                           message_id=msg.header.message_id)


# --- model and XML ----------------------------------------------------------------------


def test_contract_add_builds_xml_the_xsd_accepts(schemas: Path) -> None:
    report = validate(build_xml(message("contract"), Sender()), schemas)
    assert report.ok, report.errors
    assert report.message is not None and report.message.operation == "AdaugareContract"


def test_employee_registration_builds_xml_the_xsd_accepts(schemas: Path) -> None:
    report = validate(build_xml(message("employee"), Sender()), schemas)
    assert report.ok, report.errors
    assert report.message is not None and report.message.kind == "employee"


@pytest.mark.parametrize("action", [
    {"operation": "SuspendareContract", "action": {"kind": "suspension", "legal_basis":
     "Art51Alin1LiteraA", "starts_on": "2025-11-01T00:00:00", "ends_on": "2026-01-01T00:00:00"}},
    {"operation": "IncetareContract", "action": {"kind": "termination", "legal_basis":
     "Art55LitB", "ended_on": "2025-11-01T00:00:00", "explanation": "demisie"}},
])
def test_suspension_and_termination_validate(schemas: Path, action: dict[str, Any]) -> None:
    msg = MESSAGES.validate_python({
        "kind": "contract", "header": {"message_id": str(uuid.uuid4())},
        "contract_ref": str(uuid.uuid4()),
        "supporting_document": {"type": "Decizie", "number": "4", "date": "2025-10-20T00:00:00"},
        **action,
    })
    report = validate(build_xml(msg, Sender()), schemas)
    assert report.ok, report.errors


def test_unknown_legal_basis_is_an_xsd_error_with_its_location(schemas: Path) -> None:
    msg = MESSAGES.validate_python({
        "kind": "contract", "operation": "IncetareContract",
        "header": {"message_id": str(uuid.uuid4())}, "contract_ref": str(uuid.uuid4()),
        "action": {"kind": "termination", "legal_basis": "Art999", "ended_on": "2025-11-01T00:00"},
    })
    report = validate(build_xml(msg, Sender()), schemas)
    assert not report.ok
    assert "TemeiLegal" in report.errors[0].text and report.errors[0].location.startswith("/")


def test_model_requires_the_parts_of_each_operation() -> None:
    data = json.loads((DATA / "contract.json").read_text(encoding="utf-8"))
    with pytest.raises(ValidationError, match="contract_ref"):
        MESSAGES.validate_python({**data, "operation": "ModificareContract"})
    with pytest.raises(ValidationError, match="termination"):
        MESSAGES.validate_python({**data, "operation": "IncetareContract",
                                  "contract_ref": str(uuid.uuid4())})
    with pytest.raises(ValidationError, match="employee_ref"):
        MESSAGES.validate_python({**json.loads((DATA / "employee.json").read_text()),
                                  "operation": "ModificareSalariat"})


# --- client against the sandbox ---------------------------------------------------------


async def test_login_is_cached_and_bad_api_key_is_refused(
    reges: RegesSandbox, client: RegesClient
) -> None:
    first = await client.access_token()
    assert await client.access_token() == first and client.logins == 1
    bad = client_for(reges, password="wrong")
    with pytest.raises(RegesLoginRefused) as caught:
        await bad.access_token()
    await bad.aclose()
    assert caught.value.error == "invalid_grant" and not caught.value.retryable


async def test_expired_token_is_replaced_after_a_401(
    reges: RegesSandbox, client: RegesClient
) -> None:
    await client.access_token()
    reges.state.tokens.clear()  # REGES forgot it (expiry, restart)
    assert await client.read_result() is None
    assert client.logins == 2


async def test_submit_returns_a_receipt_and_the_result_has_a_ref(client: RegesClient) -> None:
    msg = message()
    receipt = await client.submit("contract", build_xml(msg, Sender()))
    assert receipt.message_id == msg.header.message_id
    await asyncio.sleep(0.15)
    result = await client.read_result()
    assert result is not None and result.receipt_id == receipt.receipt_id
    assert result.code == "SUCCES" and result.ref is not None
    assert await client.read_result() == result  # ReadMessage does not move on
    await client.commit_read()
    assert await client.read_result() is None


async def test_schema_errors_are_a_400_with_details(
    reges: RegesSandbox, client: RegesClient
) -> None:
    reges.state.check = lambda xml: ["/*/*[2]: sandbox: TemeiLegal not allowed"]
    with pytest.raises(RegesRejected) as caught:
        await client.submit("contract", build_xml(message(), Sender()))
    assert caught.value.status == 400 and "TemeiLegal" in caught.value.details[0]


async def test_429_is_retryable_with_retry_after(reges: RegesSandbox, client: RegesClient) -> None:
    reges.fail_next(ScriptedFailure(status=429, retry_after_s=7))
    with pytest.raises(RegesRateLimited) as caught:
        await client.read_result()
    assert caught.value.after_s == 7 and caught.value.retryable


# --- send once, wait for the result -----------------------------------------------------


async def test_send_once_then_result_with_ref(
    reges: RegesSandbox, submitter: RegesSubmitter
) -> None:
    msg = message()
    xml = build_xml(msg, Sender())
    sent = await submitter.send_once(xml, identity_of(msg), "fp", attempt=1)
    status = await submitter.await_result(msg.header.message_id, sent.receipt_id)
    assert status.state == "succeeded" and len(status.refs) == 1
    again = await submitter.send_once(xml, identity_of(msg), "fp", attempt=2)
    assert again.reused and again.receipt_id == sent.receipt_id
    assert reges.received(msg.header.message_id) == 1
    final = await submitter.inbox.final_of(msg.header.message_id)
    assert final is not None and final.refs == status.refs


async def test_other_messages_results_are_kept_for_their_owner(
    reges: RegesSandbox, submitter: RegesSubmitter
) -> None:
    first, second = message(), message()
    sent1 = await submitter.send_once(build_xml(first, Sender()), identity_of(first), "a", 1)
    sent2 = await submitter.send_once(build_xml(second, Sender()), identity_of(second), "b", 1)
    await submitter.await_result(second.header.message_id, sent2.receipt_id)  # drains both
    assert reges.state.cursors[""] == 2
    status = await submitter.await_result(first.header.message_id, sent1.receipt_id)
    assert status.state == "succeeded" and status.refs


async def test_refused_message_is_failed_with_regess_description(
    reges: RegesSandbox, submitter: RegesSubmitter
) -> None:
    msg = message()
    reges.refuse(msg.header.message_id, "Salariatul nu exista")
    sent = await submitter.send_once(build_xml(msg, Sender()), identity_of(msg), "fp", 1)
    status = await submitter.await_result(msg.header.message_id, sent.receipt_id)
    assert status.state == "failed" and status.results[0].description == "Salariatul nu exista"


async def test_lost_send_answer_is_found_in_the_queue_not_sent_again(
    reges: RegesSandbox, submitter: RegesSubmitter
) -> None:
    msg = message()
    xml = build_xml(msg, Sender())
    reges.fail_next(ScriptedFailure(route="/api/Contract", act_first=True, drop=True))
    with pytest.raises(Retry):  # OutcomeUnknown, kept as a claim to look up
        await submitter.send_once(xml, identity_of(msg), "fp", attempt=1)
    await asyncio.sleep(0.15)  # REGES processes it
    found = await submitter.send_once(xml, identity_of(msg), "fp", attempt=2)
    assert found.found_by_lookup and reges.received(msg.header.message_id) == 1


async def test_same_message_id_with_other_content_is_refused(
    submitter: RegesSubmitter,
) -> None:
    msg = message()
    await submitter.send_once(build_xml(msg, Sender()), identity_of(msg), "one", 1)
    with pytest.raises(NonRetryable, match="new one"):
        await submitter.send_once(build_xml(msg, Sender()), identity_of(msg), "two", 1)


async def test_polling_hands_back_with_retry_when_the_attempt_is_over(
    reges: RegesSandbox, submitter: RegesSubmitter
) -> None:
    reges.state.processing_s = 60
    submitter.polling = replace(submitter.polling, in_job_s=0.2)
    msg = message()
    sent = await submitter.send_once(build_xml(msg, Sender()), identity_of(msg), "fp", 1)
    with pytest.raises(Retry, match="not processed"):
        await submitter.await_result(msg.header.message_id, sent.receipt_id)
