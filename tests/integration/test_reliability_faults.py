"""Accepted ⇒ eventually exactly one success, or a dead letter with its reason — under faults.

Each scenario injects a fault into real processes (Ray replicas, redis-server, the registry
actor, the Slack and ANAF sandboxes), prints one line of counts (submitted, succeeded,
dead-lettered, duplicates) and asserts ``duplicates == 0`` and
``submitted == succeeded + dead_lettered``. A duplicate is a job whose ``job.succeeded``
event appears twice in ``<prefix>:events``, or two sends at a sandbox for one job.

The Redis, gateway, replica and registry faults run on a private app (``rig``: its own
redis-server, key prefix and registry) on the session's Ray, so the session platform is
never disturbed; the outside-API faults use the session platform and its sandboxes.
Rerun: ``RAY_raylet_start_wait_time_s=300 pytest -q -s
tests/integration/test_reliability_faults.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
import redis
import redis.asyncio as aioredis
from ray import serve

from tests.conftest import free_port
from tests.integration.conftest import (
    Platform,
    statuses,
    success_events,
    wait_ready,
    wait_terminal,
)
from workers_core.breaker import CircuitBreaker
from workers_core.config import QueueOverrides, Settings
from workers_core.deployments.app import build_platform, pool_deployment_name
from workers_core.integrations.anaf.cui import with_check_digit
from workers_core.integrations.anaf.errors import AnafUnavailable
from workers_core.integrations.anaf.http import AnafHttp
from workers_core.jobs.retry import RetryPolicy
from workers_core.local.redis_server import RedisServer
from workers_core.registry.actor import actor_name
from workers_core.sandbox.anaf import AnafSandbox
from workers_core.sandbox.anaf import ScriptedFailure as AnafFailure
from workers_core.sandbox.slack import ScriptedFailure as SlackFailure
from workers_core.sandbox.slack import SlackSandbox

pytestmark = pytest.mark.slow

APP = "faults"
PREFIX = "rf"
FAILED = {"failed", "dead"}


# -- counting ------------------------------------------------------------------------------


@dataclass
class Tally:
    """One scenario's outcome, read from the job hashes and the events stream."""

    scenario: str
    submitted: int
    succeeded: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    unfinished: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    notes: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.notes.items())
        return (f"[faults] {self.scenario}: submitted={self.submitted} "
                f"succeeded={self.succeeded} dead_lettered={self.dead_lettered} "
                f"duplicates={self.duplicates} reasons={dict(self.reasons)} {extra}").rstrip()

    def check(self) -> None:
        print(self.line())
        assert self.duplicates == 0, self.line()
        assert self.unfinished == 0, self.line()
        assert self.submitted == self.succeeded + self.dead_lettered, self.line()


def tally(scenario: str, r: redis.Redis, prefix: str, ids: list[str],
          timeout_s: float = 180) -> Tally:
    wait_terminal(r, prefix, ids, timeout_s)
    result = Tally(scenario, submitted=len(ids))
    events = success_events(r, prefix)
    for job_id, (status, error) in zip(ids, statuses(r, prefix, ids), strict=True):
        if status == "succeeded":
            result.succeeded += 1
        elif status in FAILED:
            result.dead_lettered += 1
            result.reasons[json.loads(error)["type"] if error else "none"] += 1
        else:
            result.unfinished += 1  # includes a job whose hash is gone: lost
        result.duplicates += max(events[job_id] - 1, 0)
        if status == "succeeded" and events[job_id] == 0:
            result.duplicates += 1  # a success with no event is a bookkeeping error too
    return result


# -- the private rig -----------------------------------------------------------------------


class Rig(Platform):
    """A private app: the platform's view of it, plus batch submission."""

    def batch(self, jobs: list[dict[str, Any]]) -> list[str]:
        resp = self.http.post("/v1/jobs:batch", json={"jobs": jobs})
        assert resp.status_code == 202, resp.text
        return [j["id"] for j in resp.json()["jobs"]]


@pytest.fixture(scope="module")
def rig(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """Gateway + a two-replica debug pool over its own AOF redis-server, on the session Ray."""
    server = RedisServer(Path(tmp_path_factory.mktemp("faults-redis")), free_port())
    server.start()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=server.url,
        redis_prefix=PREFIX,
        redis_socket_timeout_s=1.0,  # an unreachable Redis is noticed within a second
        redis_connect_timeout_s=0.5,
        visibility_timeout_s=3.0,
        read_block_ms=200,
        shutdown_grace_s=2.0,
        enabled_queues=["debug"],
        queues={"debug": QueueOverrides(replicas=2)},
        registry_namespace=f"wrk-rf-{uuid.uuid4().hex[:8]}",
        registry_heartbeat_interval_s=1.0,
        registry_worker_ttl_s=5.0,
        registry_sweep_interval_s=0.5,
        registry_forget_after_s=10.0,
    )
    serve.run(build_platform(settings), name=APP, route_prefix=f"/{APP}")
    with httpx.Client(base_url=f"{platform.url}/{APP}", timeout=30) as http:
        wait_ready(http)
        yield Rig(f"{platform.url}/{APP}", settings, server, http)
    serve.delete(APP)
    server.stop()


def replica_actors(deployment: str) -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith(f"SERVE_REPLICA::{APP}#{deployment}#")]


def kill_replica(deployment: str) -> str | None:
    names = replica_actors(deployment)
    if not names:
        return None
    victim = random.choice(names)
    try:
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
    except ValueError:  # already gone
        return None
    return victim


def debug_sleeps(n: int, seconds: float, tag: str) -> list[dict[str, Any]]:
    return [{"task": "debug.sleep", "payload": {"seconds": seconds},
             "idempotency_key": f"{tag}-{i}"} for i in range(n)]


class Submitter(threading.Thread):
    """Submits ``debug.echo`` jobs one by one like a careful client: each with its own
    idempotency key, resent with the same key after a 5xx or a transport error."""

    def __init__(self, rig: Rig, tag: str) -> None:
        super().__init__(daemon=True)
        self.rig, self.tag = rig, tag
        self.stop = threading.Event()
        self.answers: Counter[int | str] = Counter()
        self.accepted: dict[str, str] = {}  # idempotency key -> job id
        self.refused_at: list[float] = []
        self.accepted_at: list[float] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.rig.url, timeout=10) as http:
            i = 0
            while not self.stop.is_set():
                key = f"{self.tag}-{i}"
                body = {"task": "debug.echo", "payload": {"message": key},
                        "idempotency_key": key}
                while True:  # resend until stored; the key makes resending safe
                    try:
                        resp = http.post("/v1/jobs", json=body)
                        self.answers[resp.status_code] += 1
                    except httpx.HTTPError as exc:
                        self.answers[type(exc).__name__] += 1
                        resp = None
                    if resp is not None and resp.status_code in (200, 202):
                        self.accepted[key] = resp.json()["id"]
                        self.accepted_at.append(time.monotonic())
                        break
                    self.refused_at.append(time.monotonic())
                    time.sleep(0.2)
                i += 1
                time.sleep(0.02)

    def finish(self) -> list[str]:
        self.stop.set()
        self.join(60)
        ids = list(self.accepted.values())
        assert len(set(ids)) == len(ids), "two keys got one job"
        return ids


# -- scenarios on the rig ------------------------------------------------------------------


def test_pool_replicas_killed_repeatedly_during_a_thousand_jobs(rig: Rig) -> None:
    pool = pool_deployment_name("debug")
    ids = rig.batch(debug_sleeps(1000, 1.5, "kill"))  # ~12 s on two replicas x 64 slots
    killed: list[str] = []
    while len(killed) < 3:
        time.sleep(3)
        deadline = time.monotonic() + 60  # both may be down: wait for Serve's replacement
        while not (victim := kill_replica(pool)):
            assert time.monotonic() < deadline, "no pool replica came back to kill"
            time.sleep(0.5)
        killed.append(victim)
    result = tally("pool replicas killed x3 during 1000 jobs", rig.redis, PREFIX, ids)
    pipe = rig.redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(f"{PREFIX}:job:{job_id}", "attempts")
    rerun = sum(int(a or 0) > 1 for a in pipe.execute())
    result.notes.update(kills=len(killed), rerun_after_a_kill=rerun)
    result.check()
    assert len(killed) == 3
    assert rerun > 0, "no kill hit a running job: the scenario proved nothing"
    assert set(result.reasons) <= {"WorkerLost"}, "only a lost last attempt may dead-letter"
    wait_ready(rig.http)  # Serve brought the pool back


def test_redis_restarted_mid_run_loses_nothing(rig: Rig) -> None:
    r = rig.redis
    ids = rig.batch(debug_sleeps(500, 0.2, "restart-a"))
    deadline = time.monotonic() + 60
    while sum(s == "succeeded" for s, _ in statuses(r, PREFIX, ids)) < 100:
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.2)
    down_at = time.monotonic()
    rig.redis_server.restart()  # SIGTERM (AOF fsynced, appendfsync always), same port and dir
    wait_ready(rig.http)
    down_to_ready_s = time.monotonic() - down_at
    ids += rig.batch(debug_sleeps(500, 0.2, "restart-b"))
    result = tally("redis restarted (AOF) mid-run", rig.redis, PREFIX, ids)
    result.notes["down_to_ready_s"] = round(down_to_ready_s, 1)
    result.check()
    assert result.dead_lettered == 0


def test_redis_unreachable_for_ten_seconds_is_503_then_recovers_by_itself(rig: Rig) -> None:
    pid = int(rig.redis_server.pidfile.read_text().strip())
    submitter = Submitter(rig, f"stall-{uuid.uuid4().hex[:6]}")
    submitter.start()
    time.sleep(3)
    os.kill(pid, signal.SIGSTOP)  # a partition: connections hang, nothing answers
    stopped_at = time.monotonic()
    try:
        time.sleep(2)
        asked = time.monotonic()
        with httpx.Client(base_url=rig.url, timeout=30) as http:
            ready = http.get("/readyz").status_code
        readyz_s = time.monotonic() - asked
        time.sleep(max(0.0, stopped_at + 10 - time.monotonic()))
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed_at = time.monotonic()
    time.sleep(5)
    ids = submitter.finish()
    during = [t for t in submitter.refused_at if stopped_at <= t <= resumed_at + 1]
    first_after = min((t for t in submitter.accepted_at if t > resumed_at), default=None)
    result = tally("redis unreachable 10 s (SIGSTOP)", rig.redis, PREFIX, ids)
    result.notes.update(
        answers=dict(submitter.answers),
        accepted_during_outage=sum(stopped_at + 1.5 < t < resumed_at
                                   for t in submitter.accepted_at),
        recovered_after_s=round(first_after - resumed_at, 2) if first_after else None,
        readyz_answered_in_s=round(readyz_s, 1),
    )
    result.check()
    assert ready == 503
    assert submitter.answers[503] > 0 and during, "the gateway never refused"
    assert 500 not in submitter.answers, "an outage must be a 503 with Retry-After"
    assert result.notes["accepted_during_outage"] == 0, "accepted what it could not store"
    assert first_after is not None, "the gateway did not recover by itself"
    assert result.dead_lettered == 0


def test_gateway_replica_killed_while_clients_submit(rig: Rig) -> None:
    submitter = Submitter(rig, f"gw-{uuid.uuid4().hex[:6]}")
    submitter.start()
    time.sleep(3)
    assert kill_replica("Gateway"), "no gateway replica found"
    killed_at = time.monotonic()
    back_s = wait_ready(rig.http)
    time.sleep(3)
    ids = submitter.finish()
    result = tally("gateway replica killed", rig.redis, PREFIX, ids)
    result.notes.update(answers=dict(submitter.answers),
                        gateway_back_after_s=round(time.monotonic() - killed_at - 3, 1),
                        ready_wait_s=round(back_s, 1))
    result.check()
    assert len(ids) > 0 and result.dead_lettered == 0


def test_registry_actor_restarted_mid_run(rig: Rig) -> None:
    ids = rig.batch(debug_sleeps(300, 0.2, f"reg-{uuid.uuid4().hex[:6]}"))
    name = actor_name(rig.settings)
    registry = ray.get_actor(name, namespace=rig.settings.registry_ray_namespace)
    ray.kill(registry, no_restart=False)  # Ray restarts it (max_restarts=-1)
    killed_at = time.monotonic()
    result = tally("registry actor restarted", rig.redis, PREFIX, ids)

    def live_debug_workers() -> int:
        resp = rig.http.get("/v1/workers/debug")
        if resp.status_code != 200:
            return 0
        return sum(w["status"] in {"running", "idle"} for w in resp.json()["workers"])

    deadline = time.monotonic() + 90
    while live_debug_workers() < 2:
        assert time.monotonic() < deadline, "the restarted registry never saw the pool again"
        time.sleep(0.5)
    result.notes["registry_back_after_s"] = round(time.monotonic() - killed_at, 1)
    result.check()
    assert result.dead_lettered == 0


def test_a_timed_out_redis_command_is_not_sent_again() -> None:
    """A timeout may mean the command ran (a SUBMIT stored, a START counted): resending it
    could store a job twice. Only connection errors are retried (``Settings.redis_kwargs``)."""
    received: list[bytes] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        silent: list[socket.socket] = []

        def accept() -> None:  # a Redis that reads every command and never answers
            listener.settimeout(5)
            with contextlib.suppress(OSError):
                while True:
                    conn, _ = listener.accept()
                    silent.append(conn)
                    conn.settimeout(5)
                    with contextlib.suppress(OSError):
                        while chunk := conn.recv(4096):
                            received.append(chunk)

        threading.Thread(target=accept, daemon=True).start()
        settings = Settings(_env_file=None, redis_socket_timeout_s=0.3)  # type: ignore[call-arg]
        client = aioredis.from_url(f"redis://127.0.0.1:{port}/0", **settings.redis_kwargs())

        async def incr() -> None:
            try:
                with pytest.raises(redis.TimeoutError):
                    await client.incr("counter")
            finally:
                await client.aclose()

        asyncio.run(incr())
        time.sleep(0.3)
        for conn in silent:
            conn.close()
    sent = b"".join(received)
    assert sent.count(b"PING") + sent.count(b"INCR") == 1, sent  # a health check, or INCR


# -- outside APIs (session platform, its sandboxes) ----------------------------------------


def slack_sends(slack: SlackSandbox, marker: str) -> Counter[str]:
    return Counter(m["text"] for m in slack.messages if str(m.get("text", "")).startswith(marker))


def test_slack_5xx_429_and_dropped_answers_never_post_twice(
    platform: Platform, slack_sandbox: SlackSandbox
) -> None:
    marker = f"rf-{uuid.uuid4().hex[:6]}"
    faults = [SlackFailure(status=500, error="internal_error")] * 3 + [
        SlackFailure(status=429, retry_after_s=1)] * 3 + [
        SlackFailure(status=503, error="service_unavailable")] * 2 + [SlackFailure(drop=True)]
    slack_sandbox.fail_next(*faults)
    ids = [platform.submit("notify.slack", {"text": f"{marker}-{i}", "mode": "api"})
           for i in range(20)]
    result = tally("slack 5xx/429/drop", platform.redis, "it", ids)
    sends = slack_sends(slack_sandbox, marker)
    result.duplicates += sum(n - 1 for n in sends.values() if n > 1)
    result.notes["sends"] = sum(sends.values())
    result.check()
    assert not slack_sandbox.state.failures, "not every scripted failure was met"
    # Every success posted exactly once; a dropped answer fails as OutcomeUnknown, not resent.
    succeeded = [i for i, (s, _) in zip(range(20), statuses(platform.redis, "it", ids),
                                        strict=True) if s == "succeeded"]
    assert all(sends[f"{marker}-{i}"] == 1 for i in succeeded)
    assert set(result.reasons) <= {"OutcomeUnknown"} and result.dead_lettered <= 1


def test_anaf_timeouts_5xx_429_and_drops_are_retried_to_success(
    platform: Platform, anaf_sandbox: AnafSandbox
) -> None:
    route = "/api/PlatitorTvaRest"
    faults = [AnafFailure(status=503, retry_after_s=0, route=route),
              AnafFailure(status=502, route=route),
              AnafFailure(status=429, retry_after_s=1, route=route),
              AnafFailure(drop=True, route=route),
              AnafFailure(status=None, delay_s=4.0, route=route)]  # past the 3 s timeout
    anaf_sandbox.fail_next(*faults)
    before = len(anaf_sandbox.lookups)
    cuis = random.sample(range(30_000_000, 39_000_000), 8)  # fresh: no cache answers them
    ids = [platform.submit("taxpayer.validate", {"cuis": [str(with_check_digit(c))]})
           for c in cuis]
    result = tally("anaf timeout/5xx/429/drop", platform.redis, "it", ids, timeout_s=240)
    result.notes["lookups_answered"] = len(anaf_sandbox.lookups) - before
    result.check()
    assert not anaf_sandbox.state.failures, "not every scripted failure was met"
    assert result.succeeded == len(ids)


def test_the_anaf_breaker_opens_on_a_failing_host_and_closes_when_it_recovers(
    anaf_sandbox: AnafSandbox,
) -> None:
    route = "/api/PlatitorTvaRest"
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=1.5)
    anaf_sandbox.fail_next(*[AnafFailure(status=503, retry_after_s=0, route=route)] * 3)
    body = [{"cui": 18547290, "data": time.strftime("%Y-%m-%d")}]

    async def scenario() -> list[str]:
        seen = []
        async with AnafHttp(anaf_sandbox.url, timeout_s=3.0, breaker=breaker,
                            retry=RetryPolicy(max_attempts=1)) as http:
            for _ in range(3):
                with pytest.raises(AnafUnavailable):
                    await http.request("POST", f"{route}/v9/tva", json=body)
            seen.append(breaker.state)
            sent = anaf_sandbox.requests
            with pytest.raises(AnafUnavailable, match="open"):
                await http.request("POST", f"{route}/v9/tva", json=body)
            seen.append(f"unsent={anaf_sandbox.requests == sent}")
            await asyncio.sleep(1.6)
            seen.append(breaker.state)
            await http.request("POST", f"{route}/v9/tva", json=body)
            seen.append(breaker.state)
        return seen

    assert asyncio.run(scenario()) == ["open", "unsent=True", "half-open", "closed"]
