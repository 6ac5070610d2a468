"""Chains through the HTTP API: checked at submission, children created on success."""

from __future__ import annotations

from tests.integration.conftest import Platform


def test_follow_up_errors_are_422_naming_the_field(platform: Platform) -> None:
    resp = platform.http.post("/v1/jobs", json={
        "task": "debug.echo", "payload": {},
        "then": [{"task": "debug.sleep", "payload": {"seconds": "long"}},
                 {"task": "debug.sleep", "payload": {"seconds": {"$parent": "result.x"}}},
                 {"task": "nope.nope"}]})
    assert resp.status_code == 422, resp.text
    fields = [e["field"] for e in resp.json()["errors"]]
    assert fields == ["then.0.payload.seconds", "then.2.task"]


def test_a_chain_runs_parent_then_children(platform: Platform) -> None:
    job_id = platform.submit("debug.echo", {"message": "factura 42"}, correlation_id="ord-9",
                             then=[{"task": "debug.echo",
                                    "payload": {"message": {"$parent": "result.message"}}}])
    parent = platform.wait_done(job_id)
    assert parent["status"] == "succeeded" and len(parent["children"]) == 1
    child = platform.wait_done(parent["children"][0])
    assert child["status"] == "succeeded" and child["result"]["message"] == "factura 42"
    assert child["parent_id"] == job_id and child["correlation_id"] == "ord-9"
