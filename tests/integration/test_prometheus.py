"""A real Prometheus on loopback scrapes the running platform and answers for its metrics."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import ray

from tests.conftest import free_port
from tests.integration.conftest import Platform
from tests.waiting import eventually
from workers_core.observability import metrics

pytestmark = pytest.mark.slow

# Ray's metrics agent publishes what replicas record about every 10 s.
EXPORT_WAIT_S = 90.0


def ray_metrics_target() -> str:
    """``host:port`` of this node's metrics export (random per session unless pinned)."""
    [node] = [n for n in ray.nodes() if n["Alive"]]
    return f"{node['NodeManagerAddress']}:{node['MetricsExportPort']}"


@pytest.fixture(scope="module")
def prometheus(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is missing: apt-get install prometheus (scripts/setup.sh does)")
    work = tmp_path_factory.mktemp("prometheus")
    gateway = platform.url.removeprefix("http://")
    config = work / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - {{job_name: ray, static_configs: [{{targets: ['{ray_metrics_target()}']}}]}}\n"
        f"  - {{job_name: gateway, static_configs: [{{targets: ['{gateway}']}}]}}\n"
    )
    port = free_port()
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _ready(url), "Prometheus to start", 60, 1.0)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_ray_exports_job_metrics_under_the_names_the_dashboards_use(platform: Platform) -> None:
    job_id = platform.submit("debug.echo", {"message": "metrics"})
    assert platform.wait_done(job_id)["status"] == "succeeded"
    target = ray_metrics_target()

    def exported() -> str:
        text = httpx.get(f"http://{target}/metrics", timeout=10).text
        return text if 'ray_workers_jobs_finished_total{' in text else ""

    text = eventually(exported, "Ray to export workers_ metrics", EXPORT_WAIT_S, 1.0)
    for spec in (metrics.JOBS_SUBMITTED, metrics.JOBS_FINISHED, metrics.QUEUE_DEPTH):
        assert spec.exported_name + "{" in text, spec.exported_name
    for spec in (metrics.JOB_DURATION, metrics.QUEUE_WAIT):
        assert spec.exported_name + "_bucket{" in text, spec.exported_name
    assert 'status="succeeded"' in text and 'task="debug.echo"' in text


def test_prometheus_scrapes_the_platform_and_answers_for_a_job_metric(
    platform: Platform, prometheus: str,
) -> None:
    job_id = platform.submit("debug.echo", {"message": "scraped"})
    assert platform.wait_done(job_id)["status"] == "succeeded"
    finished = eventually(
        lambda: _query(prometheus, 'sum(ray_workers_jobs_finished_total'
                                   '{task="debug.echo",status="succeeded"})'),
        "Prometheus to hold ray_workers_jobs_finished_total", EXPORT_WAIT_S, 1.0)
    assert float(finished[0]["value"][1]) >= 1
    depth = eventually(lambda: _query(prometheus, 'ray_workers_queue_depth{queue="debug"}'),
                       "the debug queue's depth gauge", EXPORT_WAIT_S, 1.0)
    assert depth[0]["metric"]["queue"] == "debug"
    requests = eventually(
        lambda: _query(prometheus, 'workers_http_requests_total'
                                   '{route="/v1/jobs",method="POST",status="202"}'),
        "the gateway's request counter", EXPORT_WAIT_S, 1.0)
    assert float(requests[0]["value"][1]) >= 1
