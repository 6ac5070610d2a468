"""The HTTP API end to end: real Serve gateway, real pool replicas, real Redis."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from tests.integration.conftest import Platform


def events_of(platform: Platform, job_id: str) -> list[str]:
    rows = platform.redis.xrange("it:events")
    return [e["type"] for e in (json.loads(f["event"]) for _, f in rows)
            if e["subject"] == job_id]


def test_submit_returns_202_and_location_then_the_result(platform: Platform) -> None:
    resp = platform.http.post("/v1/jobs", json={
        "task": "debug.echo", "payload": {"message": "Bună ziua"}, "correlation_id": "crm-1"})
    assert resp.status_code == 202
    job_id = resp.json()["id"]
    assert resp.headers["location"] == f"/v1/jobs/{job_id}"
    job = platform.wait_done(job_id)
    assert job["status"] == "succeeded" and job["correlation_id"] == "crm-1"
    assert job["result"]["message"] == "Bună ziua" and job["attempts"] == 1
    assert job["started_at"] and job["finished_at"]


def test_batch_of_a_thousand_jobs_all_succeed(platform: Platform) -> None:
    jobs = [{"task": "debug.echo", "payload": {"message": str(i)}} for i in range(1000)]
    resp = platform.http.post("/v1/jobs:batch", json={"jobs": jobs})
    assert resp.status_code == 202
    ids = [j["id"] for j in resp.json()["jobs"]]
    assert len(set(ids)) == 1000
    for job_id in ids[::50] + ids[-1:]:
        assert platform.wait_done(job_id)["status"] == "succeeded"


def test_batch_over_the_limit_is_rejected(platform: Platform) -> None:
    jobs = [{"task": "debug.echo", "payload": {}}] * 1001
    resp = platform.http.post("/v1/jobs:batch", json={"jobs": jobs})
    # Over the body limit of this test deployment (64 KiB) or the batch limit: never stored.
    assert resp.status_code in (413, 422)


def test_same_idempotency_key_is_one_job_and_one_execution(platform: Platform) -> None:
    body = {"task": "debug.echo", "payload": {"message": "once"}}
    headers = {"Idempotency-Key": f"order-{time.time_ns()}"}
    first = platform.http.post("/v1/jobs", json=body, headers=headers)
    second = platform.http.post("/v1/jobs", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["id"] == second.json()["id"] and second.json()["duplicate"]
    platform.wait_done(first.json()["id"])
    assert events_of(platform, first.json()["id"]).count("job.started") == 1
    other = platform.http.post("/v1/jobs", json={**body, "payload": {"message": "two"}},
                               headers=headers)
    assert other.status_code == 409


def test_invalid_payload_is_422_naming_the_field(platform: Platform) -> None:
    resp = platform.http.post("/v1/jobs", json={"task": "debug.sleep",
                                                "payload": {"seconds": "long"}})
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in resp.json()["errors"]] == ["payload.seconds"]


def test_invalid_envelope_is_422_naming_the_field(platform: Platform) -> None:
    resp = platform.http.post("/v1/jobs", json={"task": "debug.echo", "max_attempts": 0})
    assert resp.status_code == 422
    assert "max_attempts" in [e["field"] for e in resp.json()["errors"]]


def test_unknown_task_is_404_naming_the_known_ones(platform: Platform) -> None:
    resp = platform.http.post("/v1/jobs", json={"task": "ocr.magic", "payload": {}})
    assert resp.status_code == 404
    assert "debug.echo" in resp.json()["known_tasks"] and "debug.echo" in resp.json()["detail"]


def test_oversized_body_is_413(platform: Platform) -> None:
    big = "x" * (platform.settings.max_body_bytes + 1)
    resp = platform.http.post("/v1/jobs", json={"task": "debug.echo",
                                                "payload": {"message": big}})
    assert resp.status_code == 413


def test_retries_then_success(platform: Platform) -> None:
    job_id = platform.submit("debug.fail", {"times": 2})
    job = platform.wait_done(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 3
    assert events_of(platform, job_id).count("job.retrying") == 2


def test_dead_letter_then_manual_retry_succeeds(platform: Platform) -> None:
    job_id = platform.submit("debug.fail", {"times": 2}, max_attempts=2)
    job = platform.wait_done(job_id)
    assert job["status"] == "dead" and job["error"]["attempt"] == 2
    queues = {q["queue"]: q for q in platform.http.get("/v1/queues").json()}
    assert queues["debug"]["dead_lettered"] >= 1
    resp = platform.http.post(f"/v1/jobs/{job_id}:retry")
    assert resp.status_code == 202 and resp.json()["status"] == "queued"
    job = platform.wait_done(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 3
    assert platform.http.post(f"/v1/jobs/{job_id}:retry").status_code == 409


def test_cancel_of_a_waiting_job(platform: Platform) -> None:
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    job_id = platform.submit("debug.echo", {"message": "never"}, not_before=later)
    resp = platform.http.post(f"/v1/jobs/{job_id}:cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    assert platform.http.post(f"/v1/jobs/{job_id}:cancel").status_code == 409
    assert "job.started" not in events_of(platform, job_id)


def test_cancel_of_a_running_job(platform: Platform) -> None:
    job_id = platform.submit("debug.sleep", {"seconds": 60})
    platform.wait_status(job_id, "running")
    resp = platform.http.post(f"/v1/jobs/{job_id}:cancel")
    assert resp.status_code == 202 and resp.json()["cancel_requested"]
    assert platform.wait_done(job_id, timeout_s=20)["status"] == "cancelled"


def test_not_before_is_honoured(platform: Platform) -> None:
    not_before = datetime.now(UTC) + timedelta(seconds=3)
    job_id = platform.submit("debug.echo", {}, not_before=not_before.isoformat())
    assert platform.job(job_id)["status"] == "scheduled"
    job = platform.wait_done(job_id, timeout_s=30)
    assert job["status"] == "succeeded"
    assert datetime.fromisoformat(job["started_at"]) >= not_before


def test_long_poll_returns_as_soon_as_the_job_finishes(platform: Platform) -> None:
    job_id = platform.submit("debug.sleep", {"seconds": 1})
    start = time.monotonic()
    job = platform.job(job_id, wait_s=30)
    assert job["status"] == "succeeded" and time.monotonic() - start < 10


def test_listing_filters_by_task_and_status(platform: Platform) -> None:
    job_id = platform.submit("debug.echo", {"message": "listed"})
    platform.wait_done(job_id)
    page = platform.http.get("/v1/jobs", params={"task": "debug.echo", "status": "succeeded",
                                                 "limit": 5}).json()
    assert page["items"] and all(j["task"] == "debug.echo" and j["status"] == "succeeded"
                                 for j in page["items"])
    assert page["next_cursor"]
    bad = platform.http.get("/v1/jobs", params={"status": "sleeping"})
    assert bad.status_code == 422


def test_queues_report_the_debug_pool(platform: Platform) -> None:
    [debug] = [q for q in platform.http.get("/v1/queues").json() if q["queue"] == "debug"]
    assert debug["replicas"] == 2
    assert {"length", "pending", "lag", "delayed", "dead_lettered"} <= set(debug)


def test_health_readiness_and_openapi(platform: Platform) -> None:
    assert platform.http.get("/healthz").json() == {"status": "ok"}
    ready = platform.http.get("/readyz").json()
    from workers_core.tasks.registry import TaskCatalog

    expected = {"redis"} | {f"pool:{q}" for q in TaskCatalog.discover().queues()}
    assert ready["checks"] == dict.fromkeys(expected, "ok")
    spec = platform.http.get("/openapi.json").json()
    assert {"/v1/jobs", "/v1/jobs:batch", "/v1/jobs/{job_id}", "/v1/queues"} <= set(spec["paths"])
    assert platform.http.get("/docs").status_code == 200
