"""kuberay/: the RayService is valid for KubeRay v1.7.0 and true to the code it deploys."""

from __future__ import annotations

import importlib
import json
from typing import Any

import jsonschema
import pytest
from ray.serve.schema import ServeDeploySchema

from tests.deploy.manifests import (
    K8S_MANIFESTS,
    KUBERAY,
    containers,
    image_problem,
    kuberay_schemas_dir,
    load_docs,
    pod_templates,
    rayservice,
    serve_config,
)
from workers_core.config import Settings
from workers_core.deployments.app import (
    GATEWAY_DEPLOYMENT,
    pool_actor_options,
    pool_deployment_name,
)
from workers_core.tasks.registry import TaskCatalog

CRD_SCHEMAS = {"RayService": "rayservices.v1.openapi.json",
               "RayCluster": "rayclusters.v1.openapi.json"}


def _app() -> dict[str, Any]:
    [app] = serve_config()["applications"]
    return dict(app)


def _settings() -> Settings:
    """The Settings the builder makes from serveConfigV2's args (environment left out)."""
    return Settings(_env_file=None, **_app()["args"])  # type: ignore[call-arg]


def _cluster() -> dict[str, Any]:
    return dict(rayservice()["spec"]["rayClusterConfig"])


def _group(name: str) -> dict[str, Any]:
    [group] = [g for g in _cluster()["workerGroupSpecs"] if g["groupName"] == name]
    return dict(group)


def test_manifests_validate_against_the_kuberay_crd_schemas() -> None:
    schemas = kuberay_schemas_dir()
    if not schemas.is_dir():
        pytest.skip(f"KubeRay CRD schemas absent at {schemas}: set KUBERAY_SCHEMAS_DIR")
    checked = 0
    for path in KUBERAY.glob("*.yaml"):
        for doc in load_docs(path):
            if doc.get("apiVersion") != "ray.io/v1":
                continue
            schema = json.loads((schemas / CRD_SCHEMAS[doc["kind"]]).read_text())
            errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                      for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
            assert not errors, f"{path.name}: {errors}"
            checked += 1
    assert checked >= 1


def test_the_schema_check_catches_a_wrong_field() -> None:
    schemas = kuberay_schemas_dir()
    if not schemas.is_dir():
        pytest.skip(f"KubeRay CRD schemas absent at {schemas}: set KUBERAY_SCHEMAS_DIR")
    doc = rayservice()
    doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["minReplicas"] = "one"
    schema = json.loads((schemas / CRD_SCHEMAS["RayService"]).read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(doc))


def test_serve_config_is_a_valid_serve_deploy_config() -> None:
    ServeDeploySchema.model_validate(serve_config())


def test_serve_config_imports_the_platform_builder_and_builds_it() -> None:
    module, _, attr = _app()["import_path"].partition(":")
    builder = getattr(importlib.import_module(module), attr)
    assert builder.__name__ == "build_app"
    builder(_app()["args"])  # every arg is a Settings field with a valid value


def test_serve_config_lists_the_gateway_and_every_pool_of_the_catalog() -> None:
    listed = {d["name"] for d in _app()["deployments"]}
    expected = {pool_deployment_name(q) for q in TaskCatalog.discover().queues()}
    assert listed == expected | {GATEWAY_DEPLOYMENT}


def test_pool_resources_match_what_the_code_gives_each_pool() -> None:
    """serveConfigV2's ray_actor_options replace the code's: they must say the same."""
    settings, catalog = _settings(), TaskCatalog.discover()
    by_name = {d["name"]: d["ray_actor_options"] for d in _app()["deployments"]}
    for queue in catalog.queues():
        options = dict(by_name[pool_deployment_name(queue)])
        options.pop("resources", None)  # custom Ray resources place the pool on its group
        assert options == pool_actor_options(catalog.queue_spec(queue, settings)), queue
    assert by_name[GATEWAY_DEPLOYMENT] == {"num_cpus": settings.gateway_num_cpus}


def test_ocr_asks_for_a_gpu_the_gpu_group_has() -> None:
    ocr = {d["name"]: d for d in _app()["deployments"]}["Pool_ocr"]["ray_actor_options"]
    assert ocr["num_gpus"] >= 1
    [worker] = _group("ocr-gpu")["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    for name in ("cpu", "pdf"):
        [c] = _group(name)["template"]["spec"]["containers"]
        assert "nvidia.com/gpu" not in c["resources"]["limits"]


def test_only_the_pdf_group_offers_the_chromium_resource_the_pdf_pool_asks_for() -> None:
    pdf = {d["name"]: d for d in _app()["deployments"]}["Pool_pdf_render"]["ray_actor_options"]
    assert pdf["resources"] == {"chromium": 1}
    offering = [g["groupName"] for g in _cluster()["workerGroupSpecs"]
                if "chromium" in g.get("resources", {})]
    assert offering == ["pdf"]
    [c] = _group("pdf")["template"]["spec"]["containers"]
    assert c["image"].endswith("-pdf")


def test_head_runs_no_work() -> None:
    assert _cluster()["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


def test_autoscaler_idle_timeout_matches_the_pool_cooldown() -> None:
    cluster = _cluster()
    assert cluster["enableInTreeAutoscaling"] is True
    cooldown = _settings().pool_scale_down_cooldown_s
    assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] == cooldown == 120
    for group in cluster["workerGroupSpecs"]:
        assert group["idleTimeoutSeconds"] == cooldown
        assert 0 <= group["minReplicas"] <= group["maxReplicas"]


def test_gcs_fault_tolerance_uses_an_external_redis_with_a_secret_password() -> None:
    ft = _cluster()["gcsFaultToleranceOptions"]
    assert ft["backend"] == "redis" and ft["redisAddress"]
    assert "value" not in ft["redisPassword"]
    assert ft["redisPassword"]["valueFrom"]["secretKeyRef"]["name"]


def test_pods_are_annotated_for_scraping_on_the_metrics_port() -> None:
    doc = rayservice()
    for where, template in pod_templates(doc):
        notes = template["metadata"]["annotations"]
        assert notes["prometheus.io/scrape"] == "true", where
        assert notes["prometheus.io/port"] == "8080", where
    assert _cluster()["headGroupSpec"]["rayStartParams"]["metrics-export-port"] == "8080"


@pytest.mark.parametrize("path", K8S_MANIFESTS, ids=lambda p: p.name)
def test_pods_run_as_non_root_with_requests_and_limits(path: Any) -> None:
    for doc in load_docs(path):
        for where, template in pod_templates(doc):
            pod = template["spec"]["securityContext"]
            assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, where
        for where, c in containers(doc):
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert c["resources"]["requests"] and c["resources"]["limits"], where


@pytest.mark.parametrize("path", K8S_MANIFESTS, ids=lambda p: p.name)
def test_every_image_is_pinned_by_version(path: Any) -> None:
    refs = [c["image"] for doc in load_docs(path) for _, c in containers(doc)]
    assert refs
    assert [p for p in map(image_problem, refs) if p] == []


@pytest.mark.parametrize(("ref", "pinned"), [
    ("ghcr.io/workers-core/workers-core:0.1.0-core", True),
    ("localhost:5000/workers-core@sha256:" + "a" * 64, True),
    ("ghcr.io/workers-core/workers-core:latest", False),
    ("ghcr.io/workers-core/workers-core", False),
    ("localhost:5000/workers-core", False),
])
def test_image_pin_check(ref: str, pinned: bool) -> None:
    assert (image_problem(ref) is None) is pinned


def test_env_vars_are_settings_fields_and_secrets_come_from_secrets() -> None:
    fields = Settings.model_fields
    secret_fields = {n for n, f in fields.items() if "SecretStr" in str(f.annotation)}
    seen = set()
    for _, c in containers(rayservice()):
        for env in c.get("env", []):
            name = env["name"]
            assert name.startswith("WORKERS_"), name
            field = name.removeprefix("WORKERS_").lower()
            assert field in fields, f"{name} is not a Settings field"
            if field in secret_fields:
                assert "value" not in env, f"{name}: a secret written in the manifest"
                assert env["valueFrom"]["secretKeyRef"]["name"], name
            seen.add(field)
    assert {"redis_password", "anaf_client_secret", "smtp_password", "slack_bot_token",
            "auth_jwt_secret_file"} <= seen


def test_serve_config_args_hold_no_secrets() -> None:
    secret_fields = {n for n, f in Settings.model_fields.items()
                     if "SecretStr" in str(f.annotation)}
    assert not secret_fields & set(_app()["args"])


def test_operator_values_pin_the_operator_image() -> None:
    [values] = load_docs(KUBERAY / "operator-values.yaml")
    image = values["image"]
    assert image_problem(f"{image['repository']}:{image['tag']}") is None
    assert image["tag"] == "v1.7.0"
