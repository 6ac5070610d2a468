"""Metric definitions, recording without Ray, and the gateway's own /metrics."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from workers_core.config import Settings
from workers_core.deployments.api import GatewayState, create_api
from workers_core.deployments.completion import CompletionWaiter
from workers_core.jobs.store import JobStore
from workers_core.observability import metrics
from workers_core.tasks.registry import TaskCatalog

JOB = {"task": "debug.echo", "payload": {"message": "salut"}}


def test_every_metric_is_prefixed_unique_and_named_as_ray_exports_it() -> None:
    names = [m.name for m in metrics.METRICS]
    assert len(set(names)) == len(names)
    for spec in metrics.METRICS:
        assert spec.name.startswith("workers_"), spec.name  # Ray hides clashing names
        assert spec.tag_keys and spec.description
        assert spec.exported_name.startswith("ray_workers_")
        if spec.kind == "counter":
            assert spec.exported_name.endswith("_total")
        if spec.kind == "histogram":
            assert list(spec.boundaries) == sorted(set(spec.boundaries))
            assert spec.boundaries[0] > 0
    assert metrics.JOBS_FINISHED.exported_name == "ray_workers_jobs_finished_total"
    assert metrics.QUEUE_DEPTH.exported_name == "ray_workers_queue_depth"


def test_recording_outside_ray_is_a_no_op_that_never_imports_ray() -> None:
    """The CLI and unit tests run without Ray: recording must neither crash nor start it."""
    script = textwrap.dedent("""
        import sys
        from workers_core.jobs.models import QueueStats
        from workers_core.observability import metrics
        metrics.job_submitted("debug.echo", "debug")
        metrics.job_started("debug.echo", "debug", 0.2)
        metrics.job_finished("debug.echo", "debug", "succeeded", 0.1)
        metrics.job_retried("debug.echo", "debug", 0.1)
        metrics.queue_observed(QueueStats(queue="debug", length=1, pending=0, lag=1,
            oldest_waiting_s=0.5, delayed=0, dead_lettered=0, replicas=1))
        with metrics.external_call("smtp", "send"):
            pass
        assert not metrics.ray_running()
        assert metrics._made == {}, metrics._made
        assert "ray" not in sys.modules, "recording imported ray"
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_external_call_lets_errors_through_unchanged() -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), metrics.external_call("anaf", "GET /x"):
        raise Boom("ANAF said no")


@pytest.mark.parametrize(("method", "path", "label"), [
    ("get", "/prod/FCTEL/rest/stareMesaj?id_incarcare=5001", "GET /prod/FCTEL/rest/stareMesaj"),
    ("GET", "/ETRANSPORT/ws/v1/lista/30/RO12345678", "GET /ETRANSPORT/ws/v1/lista/{id}/{id}"),
    ("POST", "https://webservicesp.anaf.ro/api/PlatitorTvaRest/v9/tva",
     "POST /api/PlatitorTvaRest/v9/tva"),
    ("GET", "/prod/FCTEL/rest/descarcare/3001474425", "GET /prod/FCTEL/rest/descarcare/{id}"),
])
def test_operation_labels_hold_no_ids(method: str, path: str, label: str) -> None:
    assert metrics.operation_of(method, path) == label


# -- the gateway's /metrics ------------------------------------------------------------------

@pytest.fixture
def app(settings: Settings, store: JobStore) -> FastAPI:
    return create_api(GatewayState(
        settings=settings, store=store, catalog=TaskCatalog.discover(),
        waiter=CompletionWaiter(store.redis, store.keys.done_channel)))


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_gateway_counts_requests_by_route_template_and_status(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gw") as http:
        ids = [(await http.post("/v1/jobs", json=JOB)).json()["id"] for _ in range(2)]
        for job_id in ids:
            assert (await http.get(f"/v1/jobs/{job_id}")).status_code == 200
        assert (await http.get("/v1/jobs/nope")).status_code == 404
        assert (await http.post("/v1/jobs", json={"task": "debug.echo", "payload": {
            "message": 5}})).status_code == 422
        assert (await http.get("/no/such/route")).status_code == 404
        scraped = await http.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    samples = _samples(scraped.text)

    def count(method: str, route: str, status: str) -> float:
        key = (("method", method), ("route", route), ("status", status))
        return samples.get(("workers_http_requests_total", key), 0.0)

    assert count("POST", "/v1/jobs", "202") == 2
    assert count("POST", "/v1/jobs", "422") == 1
    assert count("GET", "/v1/jobs/{job_id}", "200") == 2
    assert count("GET", "/v1/jobs/{job_id}", "404") == 1
    assert count("GET", "<unmatched>", "404") == 1
    assert not any(job_id in scraped.text for job_id in ids)  # templates, not raw paths
    latency = (("method", "GET"), ("route", "/v1/jobs/{job_id}"))
    assert samples[("workers_http_request_duration_seconds_count", latency)] == 3


async def test_each_gateway_app_has_its_own_registry(settings: Settings, store: JobStore,
                                                     app: FastAPI) -> None:
    other = create_api(GatewayState(
        settings=settings, store=store, catalog=TaskCatalog.discover(),
        waiter=CompletionWaiter(store.redis, store.keys.done_channel)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gw") as http:
        assert (await http.get("/healthz")).status_code == 200
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other),
                                 base_url="http://gw") as http:
        text = (await http.get("/metrics")).text
    assert 'route="/healthz"' not in text
