"""A backlog grows an autoscaled pool toward its max; drained, it shrinks back after the
cooldown (real Ray Serve, real Redis; replica counts read from the Serve controller)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from ray import serve

from tests.integration.conftest import TERMINAL, Platform
from workers_core.config import QueueOverrides, Settings
from workers_core.deployments.app import build_platform, pool_deployment_name

pytestmark = pytest.mark.slow

APP = "autoscaling"
PREFIX = "/autoscaling"
POOL = pool_deployment_name("debug")
MIN, MAX = 1, 3


@pytest.fixture(scope="module")
def scaled(platform: Platform) -> Iterator[Platform]:
    """A second app on the session's Serve: gateway + an autoscaled debug pool."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=platform.redis_server.url,
        redis_prefix="scale",
        visibility_timeout_s=3.0,
        read_block_ms=200,
        shutdown_grace_s=2.0,
        enabled_queues=["debug"],
        # Two jobs at a time per replica; 4 waiting or running jobs per replica wanted.
        queues={"debug": QueueOverrides(concurrency=2, min_replicas=MIN, max_replicas=MAX,
                                        target_backlog=4, scale_down_cooldown_s=4)},
    )
    serve.run(build_platform(settings), name=APP, route_prefix=PREFIX)
    yield platform
    serve.delete(APP)


def replica_states() -> dict[str, int]:
    deployment = serve.status().applications[APP].deployments[POOL]
    return {str(state): count for state, count in deployment.replica_states.items()}


def running(states: dict[str, int]) -> int:
    return sum(n for state, n in states.items() if state.endswith("RUNNING"))


def only_running(states: dict[str, int]) -> bool:
    return all(state.endswith("RUNNING") for state, n in states.items() if n)


def job_status(platform: Platform, job_id: str) -> str:
    resp = platform.http.get(f"{PREFIX}/v1/jobs/{job_id}")
    assert resp.status_code == 200, resp.text
    return str(resp.json()["status"])


@pytest.mark.timeout(600)
def test_a_backlog_grows_the_pool_and_it_shrinks_after_the_cooldown(scaled: Platform) -> None:
    assert running(replica_states()) == MIN
    jobs = [{"task": "debug.sleep", "payload": {"seconds": 2}} for _ in range(40)]
    resp = scaled.http.post(f"{PREFIX}/v1/jobs:batch", json={"jobs": jobs})
    assert resp.status_code == 202, resp.text
    ids = [job["id"] for job in resp.json()["jobs"]]

    # One replica alone needs ~40 s for this; the policy acts on a report every ~10 s.
    peak, pending, checked = MIN, set(ids), 0.0
    deadline = time.monotonic() + 400
    while pending and time.monotonic() < deadline:
        peak = max(peak, running(replica_states()))
        if time.monotonic() - checked > 2:  # job statuses less often: 2 cores, shared
            pending = {i for i in pending if job_status(scaled, i) not in TERMINAL}
            checked = time.monotonic()
        time.sleep(0.5)
    assert not pending, f"{len(pending)} jobs unfinished"
    assert peak > MIN, "the backlog never added a replica"
    assert peak <= MAX
    assert {job_status(scaled, i) for i in ids} == {"succeeded"}

    # Drained: after the cooldown (and the next report) the pool is back at its minimum.
    deadline = time.monotonic() + 150
    while not (only_running(states := replica_states()) and running(states) == MIN):
        assert time.monotonic() < deadline, f"the pool stayed at {states}"
        time.sleep(0.5)
