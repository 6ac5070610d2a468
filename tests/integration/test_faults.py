"""Nothing accepted is lost: a killed pool replica, a restarted Redis, a killed gateway,
an unreachable Redis (503), and overload (429)."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import ray
from ray import serve

from tests.conftest import free_port
from tests.integration.conftest import Platform, success_events, wait_ready
from workers_core.config import Settings
from workers_core.deployments.app import build_platform

pytestmark = pytest.mark.slow


def successes(platform: Platform, job_id: str) -> int:
    return success_events(platform.redis, platform.settings.redis_prefix)[job_id]


def test_killed_pool_replica_mid_job_still_completes_once(platform: Platform) -> None:
    job_id = platform.submit("debug.sleep", {"seconds": 2})
    job = platform.wait_status(job_id, "running")
    victim = ray.get_actor(job["consumer"], namespace="serve")
    ray.kill(victim, no_restart=True)
    job = platform.wait_done(job_id, timeout_s=90)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 2  # the killed attempt counts; the reclaimed one succeeded
    assert job["consumer"] is None and successes(platform, job_id) == 1
    # Serve replaces the killed replica.
    deadline = time.monotonic() + 90
    while platform.http.get("/readyz").status_code != 200 or next(
        q for q in platform.http.get("/v1/queues").json() if q["queue"] == "debug"
    )["replicas"] < 2:
        assert time.monotonic() < deadline, "the pool did not get its replica back"
        time.sleep(0.5)


def test_redis_restart_with_jobs_queued_loses_nothing(platform: Platform) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    scheduled = [platform.submit("debug.echo", {"message": f"s{i}"}, not_before=soon)
                 for i in range(20)]
    batch = platform.http.post("/v1/jobs:batch", json={"jobs": [
        {"task": "debug.sleep", "payload": {"seconds": 0.5}} for _ in range(300)]})
    queued = [j["id"] for j in batch.json()["jobs"]]
    platform.redis_server.restart()  # SIGTERM: AOF fsynced; then started on the same files
    for job_id in scheduled + queued:
        job = platform.wait_done(job_id, timeout_s=120)
        assert job["status"] == "succeeded", job
    assert all(successes(platform, j) == 1 for j in scheduled + queued[::10])


def test_gateway_restart_leaves_queued_jobs_unaffected(platform: Platform) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    ids = [platform.submit("debug.echo", {"message": str(i)}, not_before=soon)
           for i in range(10)]
    ids += [platform.submit("debug.sleep", {"seconds": 1}) for _ in range(10)]
    [gateway] = [a for a in ray.util.list_named_actors(all_namespaces=True)
                 if a["name"].startswith("SERVE_REPLICA::workers#Gateway#")]
    ray.kill(ray.get_actor(gateway["name"], namespace=gateway["namespace"]), no_restart=True)
    wait_ready(platform.http, timeout_s=90)  # the gateway comes back
    for job_id in ids:
        assert platform.wait_done(job_id, timeout_s=60)["status"] == "succeeded"


@pytest.fixture(scope="module")
def side_apps(platform: Platform) -> Iterator[dict[str, str]]:
    """Gateways without pools: one over an unreachable Redis, one with tiny Serve limits."""
    dead_redis = Settings(_env_file=None, redis_url=f"redis://127.0.0.1:{free_port()}/0",  # type: ignore[call-arg]
                          enabled_queues=[], redis_connect_timeout_s=0.2)
    tiny = Settings(_env_file=None, redis_url=platform.redis_server.url,  # type: ignore[call-arg]
                    redis_prefix="ov", enabled_queues=[], gateway_max_ongoing_requests=1,
                    gateway_max_queued_requests=1, backpressure_retry_after_s=3)
    serve.run(build_platform(dead_redis), name="noredis", route_prefix="/noredis")
    serve.run(build_platform(tiny), name="tiny", route_prefix="/tiny")
    yield {"noredis": f"{platform.url}/noredis", "tiny": f"{platform.url}/tiny"}
    serve.delete("noredis")
    serve.delete("tiny")


def test_unreachable_redis_is_503_with_retry_after_and_nothing_accepted(
    side_apps: dict[str, str]
) -> None:
    with httpx.Client(base_url=side_apps["noredis"], timeout=30) as http:
        resp = http.post("/v1/jobs", json={"task": "debug.echo", "payload": {}})
        assert resp.status_code == 503 and "Retry-After" in resp.headers
        assert resp.json()["type"].endswith("/store-unavailable")
        assert http.get("/readyz").status_code == 503
        assert http.get("/healthz").status_code == 200


def test_overload_is_429_with_retry_after(side_apps: dict[str, str]) -> None:
    with httpx.Client(base_url=side_apps["tiny"], timeout=30) as http:
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        job_id = http.post("/v1/jobs", json={"task": "debug.echo", "payload": {},
                                             "not_before": later}).json()["id"]

        def long_poll(_: int) -> httpx.Response:
            return http.get(f"/v1/jobs/{job_id}", params={"wait": 2})

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = [r.status_code for r in pool.map(long_poll, range(8))]
        rejected = [s for s in statuses if s == 429]
        assert len(rejected) >= 4 and set(statuses) <= {200, 429}
