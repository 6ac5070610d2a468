"""What the deployment tests share: the repo's manifests, walked as plain data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERAY = REPO / "kuberay"
RAYSERVICE = KUBERAY / "rayservice.yaml"
K8S_MANIFESTS = [RAYSERVICE, KUBERAY / "redis.yaml"]


def kuberay_schemas_dir() -> Path:
    """CRD JSON schemas: $KUBERAY_SCHEMAS_DIR, default ../shared/schemas/kuberay."""
    default = REPO.parent / "shared" / "schemas" / "kuberay"
    return Path(os.environ.get("KUBERAY_SCHEMAS_DIR", default))


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def rayservice() -> dict[str, Any]:
    [doc] = load_docs(RAYSERVICE)
    return doc


def serve_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])
    return config


def pod_templates(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod template) for a RayService's head and worker groups or a workload."""
    cluster = doc.get("spec", {}).get("rayClusterConfig")
    if cluster is not None:
        yield "head", cluster["headGroupSpec"]["template"]
        for group in cluster.get("workerGroupSpecs", []):
            yield f"group {group['groupName']}", group["template"]
    elif "template" in doc.get("spec", {}):
        yield doc["metadata"]["name"], doc["spec"]["template"]


def containers(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, template in pod_templates(doc):
        spec = template["spec"]
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            yield f"{where}/{c['name']}", c


def image_problem(ref: str) -> str | None:
    """Why an image reference is not pinned by version (None when it is)."""
    if "@sha256:" in ref:
        return None
    name = ref.rsplit("/", 1)[-1]
    if ":" not in name:
        return f"{ref}: no tag"
    tag = name.rsplit(":", 1)[1]
    if tag == "latest" or not tag:
        return f"{ref}: tag {tag or 'empty'!r}"
    return None
