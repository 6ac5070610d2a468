"""Chains: references into the parent, submission-time checks, and children created in the
step that records the parent's success (real Redis, real consumer, no Ray)."""

from __future__ import annotations

import pytest

from tests.unit.test_consumer import Runner, event_types, run_consumer, submit, wait_for
from workers_core.jobs import chains
from workers_core.jobs.models import FollowUp, JobStatus, JobSubmission
from workers_core.jobs.store import JobStore
from workers_core.tasks.registry import TaskCatalog

__all__ = ["run_consumer"]  # the fixture, shared with the consumer tests

PARENT = {"id": "p1", "correlation_id": "order-7",
          "result": {"artifact_id": "a1", "pages": [{"text": "unu"}, {"text": "doi"}]}}


def test_resolve_replaces_references_at_any_depth() -> None:
    payload = {"attachments": [{"artifact_id": {"$parent": "result.artifact_id"},
                                "filename": "factura.pdf"}],
               "subject": {"$parent": "result.pages.-1.text"}, "keep": {"$other": "x"}}
    assert chains.resolve(payload, PARENT) == {
        "attachments": [{"artifact_id": "a1", "filename": "factura.pdf"}],
        "subject": "doi", "keep": {"$other": "x"}}
    assert list(chains.references(payload)) == [("attachments", 0, "artifact_id"), ("subject",)]


def test_a_missing_path_is_a_clear_chain_error() -> None:
    with pytest.raises(chains.ChainError, match=r"nothing at 'result.pdf.id' \(stopped at 'pdf'\)"):
        chains.resolve({"x": {"$parent": "result.pdf.id"}}, PARENT)
    with pytest.raises(chains.ChainError, match="stopped at '5'"):
        chains.lookup(PARENT, "result.pages.5")


def test_check_follow_ups_names_bad_fields_but_trusts_references() -> None:
    catalog = TaskCatalog.discover()
    then = [
        FollowUp(task="debug.sleep", payload={"seconds": {"$parent": "result.delay"}}),
        FollowUp(task="debug.sleep", payload={"seconds": "long"}),
        FollowUp(task="no.such", payload={}),
        FollowUp(task="debug.echo", payload={}, then=[
            FollowUp(task="debug.echo", payload={"nope": 1})]),
    ]
    errors = chains.check_follow_ups(catalog, then)
    fields = [e["field"] for e in errors]
    assert fields == ["then.1.payload.seconds", "then.2.task", "then.3.then.0.payload.nope"]


def test_chain_size_and_depth_are_bounded() -> None:
    deep: dict = {"task": "debug.echo"}
    for _ in range(6):
        deep = {"task": "debug.echo", "then": [deep]}
    with pytest.raises(ValueError, match="deep"):
        JobSubmission.model_validate({"task": "debug.echo", "then": [deep]})
    wide = [{"task": "debug.echo", "then": [{"task": "debug.echo"}] * 3}] * 6
    with pytest.raises(ValueError, match="at most 20"):
        JobSubmission.model_validate({"task": "debug.echo", "then": wide})


async def test_children_are_created_when_the_parent_succeeds(
    store: JobStore, run_consumer: Runner
) -> None:
    await run_consumer()
    then = [FollowUp(task="debug.echo",
                     payload={"message": {"$parent": "result.message"},
                              "data": {"from": {"$parent": "id"}}},
                     then=[FollowUp(task="debug.echo", payload={"message": "grandchild"})])]
    parent_id = await submit(store, "debug.echo", {"message": "salut"}, then=then,
                             correlation_id="order-7")
    parent = await wait_for(store, parent_id, JobStatus.SUCCEEDED)
    [child_id] = parent.children
    child = await wait_for(store, child_id, JobStatus.SUCCEEDED)
    assert child.parent_id == parent_id and child.correlation_id == "order-7"
    assert child.result["message"] == "salut" and child.result["data"] == {"from": parent_id}
    [grandchild_id] = child.children
    grandchild = await wait_for(store, grandchild_id, JobStatus.SUCCEEDED)
    assert grandchild.result["message"] == "grandchild" and grandchild.parent_id == child_id
    assert parent.chain_error is None


async def test_a_chain_that_cannot_be_built_leaves_the_parent_succeeded_with_the_reason(
    store: JobStore, run_consumer: Runner
) -> None:
    await run_consumer()
    then = [FollowUp(task="debug.sleep", payload={"seconds": {"$parent": "result.message"}})]
    parent_id = await submit(store, "debug.echo", {"message": "not a number"}, then=then)
    parent = await wait_for(store, parent_id, JobStatus.SUCCEEDED)
    assert parent.children == []
    assert parent.chain_error and "seconds" in parent.chain_error
    assert "job.chain_failed" in await event_types(store, parent_id)


async def test_a_failed_parent_creates_no_children(store: JobStore, run_consumer: Runner) -> None:
    await run_consumer()
    parent_id = await submit(store, "debug.fail", {"retryable": False}, max_attempts=1,
                             then=[FollowUp(task="debug.echo")])
    parent = await wait_for(store, parent_id, JobStatus.FAILED)
    assert parent.children == []
    assert await store.redis.zcard(store.keys.index("task", "debug.echo")) == 0
