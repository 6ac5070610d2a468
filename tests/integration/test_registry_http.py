"""The registry on the running platform: every pool registered and healthy, a killed
replica reported missing and replaced with no job lost, outside workers over HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import ray
from click.testing import CliRunner

from tests.integration.conftest import Platform
from tests.waiting import eventually
from workers_core.cli import main
from workers_core.client import WorkersClient

pytestmark = pytest.mark.slow

LIVE = {"running", "idle"}


def workers(platform: Platform) -> dict[str, dict[str, Any]]:
    resp = platform.http.get("/v1/workers")
    assert resp.status_code == 200, resp.text
    return {t["tag"]: t for t in resp.json()}


def healthy(tag: dict[str, Any], replicas: int) -> bool:
    live = [w for w in tag["workers"] if w["status"] in LIVE and w["health"]["ok"]]
    return len(live) == replicas and len(live) == len(tag["workers"])


def test_every_queue_is_registered_with_healthy_workers(platform: Platform) -> None:
    queues = {t["queue"] for t in platform.http.get("/v1/tasks").json()}
    expected = {q: (2 if q == "debug" else 1) for q in queues}

    def all_healthy() -> dict[str, dict[str, Any]] | None:
        tags = workers(platform)
        ok = all(q in tags and healthy(tags[q], n) for q, n in expected.items())
        return tags if ok else None

    tags = eventually(all_healthy, "every queue registered and healthy")
    for queue in expected:
        worker = tags[queue]["workers"][0]
        assert worker["health"]["checks"], f"{queue} reported no deep check"
        assert all(not v.startswith("error") for v in worker["health"]["checks"].values())
        assert worker["node"] and worker["version"]
    one = platform.http.get("/v1/workers/debug").json()
    assert one["tag"] == "debug" and one["counts"]["missing"] == 0


def test_a_killed_replica_goes_missing_is_replaced_and_no_job_is_lost(
    platform: Platform,
) -> None:
    eventually(lambda: healthy(workers(platform)["debug"], 2), "debug healthy")
    jobs = [platform.submit("debug.sleep", {"seconds": 1}) for _ in range(30)]

    def a_running_job_consumer() -> str | None:
        running = platform.http.get("/v1/jobs", params={"task": "debug.sleep",
                                                        "status": "running"}).json()
        return next((j["consumer"] for j in running["items"] if j["consumer"]), None)

    victim = eventually(a_running_job_consumer, "a debug.sleep job running", 60)
    ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
    killed_at = time.monotonic()

    def victim_status() -> str | None:
        found = [w["status"] for w in workers(platform)["debug"]["workers"]
                 if w["replica_id"] == victim]
        if not found:
            return "gone"  # already forgotten
        return found[0] if found[0] not in LIVE else None

    status = eventually(victim_status, "the killed replica reported missing", 60)
    print(f"killed replica {status} after {time.monotonic() - killed_at:.1f} s "
          f"(TTL {platform.settings.registry_worker_ttl_s:g} s)")
    assert status in ("missing", "gone")
    eventually(lambda: healthy(workers(platform)["debug"], 2), "debug recovered to 2 "
               "healthy replicas", 120)
    print(f"recovered after {time.monotonic() - killed_at:.1f} s")
    for job_id in jobs:
        assert platform.wait_done(job_id, timeout_s=120)["status"] == "succeeded"


def test_an_outside_worker_heartbeats_over_http_and_goes_missing_when_silent(
    platform: Platform,
) -> None:
    pubsub = platform.redis.pubsub()
    pubsub.subscribe(f"{platform.settings.registry_namespace}:events")
    body = {"replica_id": "scanner-1", "node": "office-pc", "version": "0.3",
            "status": "running", "interval_s": 1,
            "metrics": {"in_flight": 1, "tasks_ok": 4}}
    resp = platform.http.patch("/v1/workers/external.scanner/heartbeat", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "running" and resp.json()["health_score"] == 100
    ns = platform.settings.registry_namespace
    assert 0 < platform.redis.ttl(f"{ns}:registry:status:external.scanner") <= 120
    assert 0 < platform.redis.ttl(f"{ns}:registry:metrics:external.scanner") <= 60

    eventually(lambda: platform.http.get("/v1/workers/external.scanner").json()
               ["workers"][0]["status"] == "missing", "the silent worker missing", 60)
    events = []
    deadline = time.monotonic() + 10
    while "missing" not in events and time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if message and json.loads(message["data"])["tag"] == "external.scanner":
            events.append(json.loads(message["data"])["type"])
    pubsub.close()
    assert events[0] == "registered" and "missing" in events

    resp = platform.http.patch("/v1/workers/external.scanner/heartbeat", json=body)
    assert resp.json()["status"] == "running"
    resp = platform.http.delete("/v1/workers/external.scanner",
                                params={"replica_id": "scanner-1"})
    assert resp.json() == {"tag": "external.scanner", "unregistered": 1}
    stopped = platform.http.get("/v1/workers/external.scanner").json()
    assert stopped["workers"][0]["status"] == "stopped" and stopped["health_score"] == 0


def test_a_bad_heartbeat_is_a_422_naming_the_field(platform: Platform) -> None:
    resp = platform.http.patch("/v1/workers/x/heartbeat",
                               json={"replica_id": "w1", "status": "missing"})
    assert resp.status_code == 422
    assert "status" in resp.text


def test_unknown_tags_are_404(platform: Platform) -> None:
    assert platform.http.get("/v1/workers/no.such.queue").status_code == 404
    assert platform.http.delete("/v1/workers/no.such.queue").status_code == 404


def test_the_sdk_and_the_cli_show_the_registry(platform: Platform) -> None:
    eventually(lambda: healthy(workers(platform)["debug"], 2), "debug healthy")
    with WorkersClient(platform.url) as wc:
        [debug] = wc.workers("debug")
        every = wc.workers()
    assert debug.tag == "debug" and len(debug.workers) == 2
    assert "debug" in {t.tag for t in every}
    result = CliRunner().invoke(main, ["--url", platform.url, "workers", "debug"])
    assert result.exit_code == 0, result.output
    assert result.output.count("\ndebug ") == 2 and "FAILED_CHECKS" in result.output
