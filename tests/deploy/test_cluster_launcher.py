"""cluster.yaml: valid for Ray's cluster launcher and fit for the Serve config it deploys."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.deploy.manifests import REPO, serve_config
from workers_core.config import Settings

CLUSTER = REPO / "cluster.yaml"


def _cluster() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(CLUSTER.read_text(encoding="utf-8"))
    return config


def _node_types() -> dict[str, Any]:
    return dict(_cluster()["available_node_types"])


def test_cluster_yaml_passes_rays_own_validation() -> None:
    validate_config(prepare_config(copy.deepcopy(_cluster())))


def test_rays_validation_rejects_a_broken_config() -> None:
    broken = _cluster()
    broken["head_node_type"] = "nowhere"
    with pytest.raises(ValueError):
        validate_config(prepare_config(broken))


def test_head_runs_no_work_and_starts_the_serve_app() -> None:
    config = _cluster()
    assert _node_types()[config["head_node_type"]]["resources"] == {"CPU": 0}
    start = " ".join(config["head_start_ray_commands"])
    assert "--num-cpus=0" in start
    assert "serve deploy" in start and "kuberay/rayservice.yaml" in start


def test_idle_timeout_matches_the_pool_cooldown() -> None:
    cooldown_s = Settings(_env_file=None).pool_scale_down_cooldown_s  # type: ignore[call-arg]
    assert _cluster()["idle_timeout_minutes"] * 60 == cooldown_s


def test_node_types_offer_what_the_pools_ask_for() -> None:
    """Every GPU or custom resource a pool asks for exists on some worker node type."""
    [app] = serve_config()["applications"]
    asked: set[str] = set()
    for deployment in app["deployments"]:
        options = deployment.get("ray_actor_options", {})
        if options.get("num_gpus"):
            asked.add("GPU")
        asked |= set(options.get("resources", {}))
    offered = {r for t in _node_types().values() for r, n in t["resources"].items() if n}
    assert asked <= offered
    assert _node_types()["ocr_gpu"]["resources"]["GPU"] >= 1


def test_setup_installs_the_package_as_locked() -> None:
    setup = " ".join(_cluster()["setup_commands"])
    assert "uv sync --frozen" in setup
    for name, extra in (("ocr_gpu", "ocr"), ("pdf", "pdf")):
        commands = " ".join(_node_types()[name]["worker_setup_commands"])
        assert f"--extra {extra}" in commands
    assert "chromium" in " ".join(_node_types()["pdf"]["worker_setup_commands"])
    assert _cluster()["file_mounts"]["~/workers.env"]  # secrets from a local file, not here
