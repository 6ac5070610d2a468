"""On an autoscaling cluster (CPU head, GPU worker type at min 0) the OCR pool's GPU needs
make the Ray autoscaler add a GPU node: ahead of demand (``warm_capacity``) and for a
replica that cannot be placed (pending actor).

Opt-in and alone: ``pytest -m optin tests/optin -p no:randomly`` in a run without other Ray
tests of its own process (it makes its own cluster; it does not stop anyone else's).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import ray
from ray import serve

from tests.conftest import free_port
from tests.optin.isolated_cluster import IsolatedAutoscalingCluster
from tests.waiting import eventually
from workers_core.actors.scaling import release_capacity, warm_capacity
from workers_core.config import QueueOverrides, Settings
from workers_core.deployments.app import build_platform, pool_deployment_name
from workers_core.local.redis_server import RedisServer
from workers_core.tasks.registry import TaskCatalog

pytestmark = [pytest.mark.optin, pytest.mark.slow]

NODE_WAIT = (240, 1)  # seconds, poll interval: the autoscaler adds/removes nodes slowly
OCR_ON_HALF_A_GPU = QueueOverrides(num_cpus=1, num_gpus=0.5, replicas=1)


@pytest.fixture(scope="module")
def gpu_cluster() -> Iterator[IsolatedAutoscalingCluster]:
    if ray.is_initialized():
        pytest.skip("needs a Ray cluster of its own: run tests/optin in a separate pytest")
    cluster = IsolatedAutoscalingCluster(
        head_resources={"CPU": 4},
        worker_node_types={"gpu_node": {
            "resources": {"CPU": 2, "GPU": 1, "object_store_memory": 200 * 1024**2},
            "node_config": {}, "min_workers": 0, "max_workers": 1,
        }},
        idle_timeout_minutes=0.05,  # an idle GPU node goes after 3 s
    )
    cluster.start()
    try:
        ray.init(address=cluster.address, namespace="workers-core-optin",
                 log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0))


def ocr_settings(**kw: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        enabled_queues=["ocr"], queues={"ocr": OCR_ON_HALF_A_GPU},
        ocr_use_gpu=False,  # the fake GPU node has no CUDA device behind it
        **kw,
    )


@pytest.mark.timeout(600)
def test_warm_capacity_adds_a_gpu_node_and_releasing_lets_it_go(
    gpu_cluster: IsolatedAutoscalingCluster,
) -> None:
    assert gpus() == 0
    spec = TaskCatalog.discover().queue_spec("ocr", ocr_settings())
    assert warm_capacity([(spec, 1)]) == [{"CPU": 1.0, "GPU": 0.5}]
    eventually(lambda: gpus() >= 1, "a GPU node for the warmed capacity", *NODE_WAIT)
    release_capacity()
    eventually(lambda: gpus() == 0, "the idle GPU node to be removed", *NODE_WAIT)


@pytest.mark.timeout(600)
def test_a_pending_gpu_replica_makes_the_autoscaler_add_a_gpu_node(
    gpu_cluster: IsolatedAutoscalingCluster, redis_server: RedisServer,
) -> None:
    pytest.importorskip("rapidocr", reason="install workers-core[ocr]")
    eventually(lambda: gpus() == 0, "a cluster without GPUs", *NODE_WAIT)
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    try:
        app = build_platform(ocr_settings(redis_url=redis_server.url, redis_prefix="gpu"))
        # The head has no GPU, so the replica stays pending (serve.run waits) until the
        # autoscaler adds a GPU node for it.
        serve.run(app, name="gpu", route_prefix="/")
        assert gpus() >= 1
        states = serve.status().applications["gpu"].deployments[
            pool_deployment_name("ocr")].replica_states
        assert {str(s).rsplit(".", 1)[-1]: n for s, n in states.items() if n} == {"RUNNING": 1}
        gpu_nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")]
        assert len(gpu_nodes) == 1
    finally:
        serve.shutdown()
