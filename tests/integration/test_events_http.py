"""Lifecycle events over real HTTP through Serve: SSE streaming and resuming, webhook
registration, delivery with signatures, retries, dead letters and redelivery."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook as StandardWebhook

from tests.integration.conftest import Platform
from tests.loopback import Receiver
from tests.waiting import eventually

LIFECYCLE = ["job.queued", "job.started", "job.succeeded"]


def read_sse(response: httpx.Response, until: str,
             timeout_s: float = 30) -> list[dict[str, Any]]:
    """Parse SSE messages (id, event, data) until one of type ``until`` arrives."""
    messages: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    deadline = time.monotonic() + timeout_s
    for line in response.iter_lines():
        assert time.monotonic() < deadline, f"no {until} in {messages}"
        if line.startswith(":"):
            continue
        if not line:
            if current:
                messages.append(current)
                if current.get("event") == until:
                    return messages
                current = {}
            continue
        key, _, value = line.partition(":")
        current[key] = value.removeprefix(" ")
    raise AssertionError(f"stream ended before {until}: {messages}")


def test_sse_streams_a_jobs_lifecycle_live(platform: Platform) -> None:
    correlation = f"crm-{uuid.uuid4().hex[:8]}"
    with platform.http.stream("GET", "/v1/events", params={"correlation_id": correlation},
                              timeout=httpx.Timeout(30, read=30)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        job_id = platform.submit("debug.echo", {"message": "live"}, correlation_id=correlation)
        messages = read_sse(response, until="job.succeeded")
    assert [m["event"] for m in messages] == LIFECYCLE
    for m in messages:
        event = json.loads(m["data"])
        assert event["type"] == m["event"] and event["data"]["job_id"] == job_id
        assert event["specversion"] == "1.0"


def test_sse_resumes_after_last_event_id_with_only_later_events(platform: Platform) -> None:
    job_id = platform.submit("debug.echo", {"message": "resume"})
    assert platform.wait_done(job_id)["status"] == "succeeded"
    with platform.http.stream("GET", "/v1/events", params={"job_id": job_id, "after": "0"},
                              timeout=30) as response:
        first = read_sse(response, until="job.succeeded")
    assert [m["event"] for m in first] == LIFECYCLE
    with platform.http.stream("GET", "/v1/events", params={"job_id": job_id},
                              headers={"Last-Event-ID": first[0]["id"]}, timeout=30) as response:
        later = read_sse(response, until="job.succeeded")
    assert [m["event"] for m in later] == LIFECYCLE[1:]
    assert [m["id"] for m in later] == [m["id"] for m in first[1:]]


def test_sse_refuses_a_malformed_last_event_id(platform: Platform) -> None:
    resp = platform.http.get("/v1/events", params={"after": "yesterday"})
    assert resp.status_code == 422 and "after" in resp.text


def register(platform: Platform, url: str, **filter_: Any) -> dict[str, Any]:
    resp = platform.http.post("/v1/webhooks", json={"url": url, "filter": filter_,
                                                    "description": "test receiver"})
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"] == f"/v1/webhooks/{resp.json()['id']}"
    return dict(resp.json())


@pytest.mark.parametrize("url, field_message", [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://10.0.0.8/hook", "private"),
    ("https://hooks.elsewhere.example/hook", "WORKERS_WEBHOOK_ALLOWED_HOSTS"),
    ("http://localhost:9/hook", "WORKERS_WEBHOOK_ALLOWED_HOSTS"),
    ("ftp://127.0.0.1/hook", "https"),
])
def test_registration_refuses_destinations_outside_the_policy(
        platform: Platform, url: str, field_message: str) -> None:
    resp = platform.http.post("/v1/webhooks", json={"url": url})
    assert resp.status_code == 422, resp.text
    [error] = resp.json()["errors"]
    assert error["field"] == "url" and field_message in error["message"]


def test_a_bad_secret_is_refused_naming_the_field(platform: Platform) -> None:
    resp = platform.http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/h",
                                                    "secret": "hunter2"})
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "secret"
    assert "hunter2" not in resp.text


def test_webhook_delivers_signed_events_and_never_shows_the_secret_again(
        platform: Platform, receiver: Receiver) -> None:
    correlation = f"erp-{uuid.uuid4().hex[:8]}"
    hook = register(platform, receiver.url, correlation_id=correlation, types=["job.succeeded"])
    assert hook["secret"].startswith("whsec_")
    job_id = platform.submit("debug.echo", {"message": "hook"}, correlation_id=correlation)
    eventually(lambda: receiver.received, "a delivery")
    headers, body = receiver.received[0]
    event = StandardWebhook(hook["secret"]).verify(body, headers)
    assert event["type"] == "job.succeeded" and event["data"]["job_id"] == job_id
    shown = platform.http.get(f"/v1/webhooks/{hook['id']}").json()
    listed = platform.http.get("/v1/webhooks").json()
    assert "secret" not in shown and hook["secret"] not in json.dumps(listed)
    deliveries = platform.http.get(f"/v1/webhooks/{hook['id']}/deliveries").json()
    assert deliveries[0]["outcome"] == "delivered" and deliveries[0]["status_code"] == 204
    assert platform.http.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
    assert platform.http.get(f"/v1/webhooks/{hook['id']}").status_code == 404


def test_a_receiver_failing_then_recovering_gets_the_event_after_retries(
        platform: Platform, receiver: Receiver) -> None:
    receiver.fail_first = 2
    correlation = f"retry-{uuid.uuid4().hex[:8]}"
    hook = register(platform, receiver.url, correlation_id=correlation, types=["job.succeeded"])
    job_id = platform.submit("debug.echo", {}, correlation_id=correlation)
    eventually(lambda: receiver.received, "a delivery")
    assert receiver.calls == 3
    assert receiver.events[0]["data"]["job_id"] == job_id
    outcomes = [d["outcome"] for d in
                platform.http.get(f"/v1/webhooks/{hook['id']}/deliveries").json()]
    assert outcomes == ["delivered", "retrying", "retrying"]


def test_a_receiver_always_failing_is_dead_lettered_then_redelivered(
        platform: Platform, receiver: Receiver) -> None:
    receiver.fail_first = -1
    correlation = f"dead-{uuid.uuid4().hex[:8]}"
    hook = register(platform, receiver.url, correlation_id=correlation, types=["job.succeeded"])
    job_id = platform.submit("debug.echo", {}, correlation_id=correlation)
    letters_url = f"/v1/webhooks/{hook['id']}/dead-letters"
    eventually(lambda: platform.http.get(letters_url).json(), "a dead letter")
    [letter] = platform.http.get(letters_url).json()
    assert letter["last_error"] == "HTTP 500" and letter["attempts"] == 3
    assert letter["event"]["data"]["job_id"] == job_id

    receiver.fail_first = 0  # recovered
    resp = platform.http.post(f"{letters_url}:redeliver")
    assert resp.status_code == 202 and resp.json() == {"redelivered": 1}
    eventually(lambda: receiver.received, "a delivery")
    assert receiver.events[0]["data"]["job_id"] == job_id
    assert platform.http.get(letters_url).json() == []
