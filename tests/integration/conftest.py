"""One Ray instance and one Serve application for the whole integration session."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
import redis
from ray import serve

from tests.conftest import SmtpServer, free_port
from workers_core.config import QueueOverrides, Settings
from workers_core.deployments.app import build_platform
from workers_core.efactura.errors import SchemasUnavailable
from workers_core.efactura.schemas import schemas_root
from workers_core.local.redis_server import RedisServer
from workers_core.sandbox.anaf import AnafSandbox
from workers_core.sandbox.reges import RegesSandbox
from workers_core.sandbox.slack import SlackSandbox

APP_NAME = "workers"
TERMINAL = {"succeeded", "failed", "dead", "cancelled"}


@dataclass
class Platform:
    """The running platform as a test sees it."""

    url: str
    settings: Settings
    redis_server: RedisServer
    http: httpx.Client

    @property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_server.url, decode_responses=True)

    def submit(self, task: str, payload: dict[str, Any], **extra: Any) -> str:
        headers = extra.pop("headers", {})
        resp = self.http.post(
            "/v1/jobs", json={"task": task, "payload": payload, **extra}, headers=headers
        )
        assert resp.status_code in (200, 202), resp.text
        return str(resp.json()["id"])

    def job(self, job_id: str, wait_s: float = 0) -> dict[str, Any]:
        resp = self.http.get(f"/v1/jobs/{job_id}", params={"wait": wait_s}, timeout=wait_s + 10)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def wait_done(self, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id, wait_s=min(10, max(deadline - time.monotonic(), 0)))
            if job["status"] in TERMINAL or time.monotonic() > deadline:
                return job

    def wait_status(self, job_id: str, status: str, timeout_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while (job := self.job(job_id))["status"] != status:
            assert time.monotonic() < deadline, f"job stayed {job['status']}, not {status}"
            time.sleep(0.1)
        return job


def wait_ready(http: httpx.Client, timeout_s: float = 180) -> float:
    """Seconds until ``/readyz`` answers 200; a refused or hung (5 s) request is not yet."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if http.get("/readyz", timeout=5).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"{http.base_url} did not become ready in {timeout_s:g} s")


def statuses(r: redis.Redis, prefix: str, ids: list[str]) -> list[tuple[str | None, str | None]]:
    """(status, error) of each job, read straight from the job hashes under ``prefix``."""
    pipe = r.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(f"{prefix}:job:{job_id}", "status", "error")
    return [(s, e) for s, e in pipe.execute()]


def wait_terminal(r: redis.Redis, prefix: str, ids: list[str], timeout_s: float) -> None:
    """Until every job is terminal or ``timeout_s`` passes (the caller counts what is not)."""
    deadline = time.monotonic() + timeout_s
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        pending = [j for j, (s, _) in zip(pending, statuses(r, prefix, pending), strict=True)
                   if s not in TERMINAL]
        if pending:
            time.sleep(1.0)


def success_events(r: redis.Redis, prefix: str) -> Counter[str]:
    """``job.succeeded`` events per job id, over the whole events stream."""
    seen: Counter[str] = Counter()
    last = "-"
    while rows := r.xrange(f"{prefix}:events", min=last, count=5000):
        for _, fields in rows:
            event = json.loads(fields["event"])
            if event["type"] == "job.succeeded":
                seen[event["subject"]] += 1
        last = "(" + str(rows[-1][0])
    return seen


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    # A loaded 2-core machine can take over Ray's default 60 s to start a raylet.
    os.environ.setdefault("RAY_raylet_start_wait_time_s", "300")
    # ...and its metrics agent: past this the raylet aborts ("Timed out waiting for file
    # .../metrics_agent_port_*", ray-project/ray#65983) and the whole session is lost.
    os.environ.setdefault("RAY_agent_register_timeout_ms", "300000")
    # Logical CPUs: replicas reserve fractions; the machine has 2 real cores.
    ray.init(
        num_cpus=8, include_dashboard=False, log_to_driver=False, namespace="workers-core-tests"
    )
    yield
    ray.shutdown()


def _schemas() -> Path | None:
    try:
        return schemas_root(Settings(_env_file=None))  # type: ignore[call-arg]
    except SchemasUnavailable:
        return None


@pytest.fixture(scope="session")
def anaf_sandbox() -> Iterator[AnafSandbox]:
    """ANAF for the session; e-Factura uploads judged by the real rules when present."""
    with AnafSandbox(schemas_dir=_schemas()) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def reges_sandbox() -> Iterator[RegesSandbox]:
    """REGES-ONLINE for the session; messages judged by reges.xsd when present."""
    with RegesSandbox(schemas_dir=_schemas()) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def platform(
    ray_session: None,
    tmp_path_factory: pytest.TempPathFactory,
    smtp_server: SmtpServer,
    slack_sandbox: SlackSandbox,
    anaf_sandbox: AnafSandbox,
    reges_sandbox: RegesSandbox,
) -> Iterator[Platform]:
    server = RedisServer(Path(tmp_path_factory.mktemp("platform-redis")), free_port())
    server.start()
    port = free_port()
    anaf_cert = tmp_path_factory.mktemp("anaf") / "signing.pem"
    anaf_cert.write_bytes(anaf_sandbox.signing_cert_pem)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=server.url,
        redis_prefix="it",
        visibility_timeout_s=3.0,
        read_block_ms=200,
        shutdown_grace_s=2.0,
        max_body_bytes=64 * 1024,
        artifact_max_bytes=256 * 1024,
        queues={"debug": QueueOverrides(replicas=2)},
        log_json=True,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_tls="none",
        smtp_username=smtp_server.username,
        smtp_password=smtp_server.password,
        smtp_from="facturi@firma.ro",
        slack_api_url=slack_sandbox.api_url,
        slack_bot_token=slack_sandbox.token,
        slack_default_channel="#facturi",
        anaf_public_url=anaf_sandbox.url,
        anaf_api_url=anaf_sandbox.url,
        anaf_oauth_url=anaf_sandbox.url,
        anaf_client_id=anaf_sandbox.client_id,
        anaf_client_secret=anaf_sandbox.client_secret,
        anaf_timeout_s=3.0,
        anaf_signature_certs=[anaf_cert],
        efactura_poll_first_s=0.2,
        efactura_poll_max_interval_s=0.5,
        efactura_poll_in_job_s=20.0,
        efactura_lookup_retry_s=0.5,
        efactura_lookup_grace_s=60.0,
        webhook_allowed_hosts=["127.0.0.1"],  # receivers in the tests listen on loopback
        webhook_allow_loopback=True,
        webhook_max_attempts=3,
        webhook_backoff_base_s=0.2,
        webhook_backoff_max_s=0.5,
        webhook_dispatch_block_ms=100,
        events_sse_block_ms=500,
        reges_api_url=reges_sandbox.url,
        reges_token_url=reges_sandbox.token_url,
        reges_client_secret=reges_sandbox.client_secret,
        reges_username=reges_sandbox.username,
        reges_password=reges_sandbox.password,
        reges_timeout_s=3.0,
        reges_poll_first_s=0.2,
        reges_poll_max_interval_s=0.5,
        reges_poll_in_job_s=20.0,
        reges_lookup_retry_s=0.5,
        # Registry: its own key namespace and actor name per session; fast beats and TTL.
        registry_namespace=f"wrk-it-{uuid.uuid4().hex[:8]}",
        registry_heartbeat_interval_s=1.0,
        registry_worker_ttl_s=5.0,
        registry_sweep_interval_s=0.5,
        registry_forget_after_s=10.0,
        health_check_interval_s=2.0,
        schedule_poll_interval_s=0.2,  # recurring jobs: a per-second cron fires promptly
    )
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_platform(settings), name=APP_NAME, route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=30) as http:
        wait_ready(http)
        yield Platform(url=url, settings=settings, redis_server=server, http=http)
    serve.shutdown()
    server.stop()
