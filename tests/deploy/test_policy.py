"""infra/policies/opa: the CTNoLatest Rego, run by a real Rego engine (regopy)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import K8S_MANIFESTS, REPO, load_docs, pod_templates

regopy = pytest.importorskip("regopy", reason="regopy absent: install the dev extra")

OPA = REPO / "infra" / "policies" / "opa"


def _template() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((OPA / "template.yaml").read_text(encoding="utf-8"))
    return doc


def _constraint() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((OPA / "constraint.yaml").read_text(encoding="utf-8"))
    return doc


def violations(pod_spec: dict[str, Any], exempt: list[str] | None = None) -> list[str]:
    """What Gatekeeper would answer for a Pod with this spec under the constraint."""
    interpreter = regopy.Interpreter()
    interpreter.add_module("ctnolatest.rego", _template()["spec"]["targets"][0]["rego"])
    parameters = _constraint()["spec"]["parameters"] | (
        {"exemptImages": exempt} if exempt is not None else {})
    interpreter.set_input_term(json.dumps({
        "review": {"object": {"kind": "Pod", "spec": pod_spec}}, "parameters": parameters}))
    out = json.loads(str(interpreter.query("v = data.ctnolatest.violation")))
    return sorted(v["msg"] for v in out["bindings"]["v"])


def _pod(*images: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)],
            "initContainers": [{"name": f"i{i}", "image": im} for i, im in enumerate(init)]}


def test_constraint_uses_the_template_kind_and_targets_the_platform_pods() -> None:
    template, constraint = _template(), _constraint()
    kind = template["spec"]["crd"]["spec"]["names"]["kind"]
    assert kind == "CTNoLatest" and template["metadata"]["name"] == kind.lower()
    assert constraint["kind"] == kind
    assert constraint["metadata"]["annotations"]["title"] == "NoLatestWorkers"
    assert constraint["spec"]["match"]["kinds"] == [{"apiGroups": [""], "kinds": ["Pod"]}]
    [selector] = constraint["spec"]["match"]["labelSelector"]["matchExpressions"]
    names = {t["metadata"]["labels"]["app.kubernetes.io/name"]
             for path in K8S_MANIFESTS for doc in load_docs(path)
             for _, t in pod_templates(doc)}
    assert names <= set(selector["values"])  # every pod we ship is covered


def test_latest_is_rejected() -> None:
    [msg] = violations(_pod("ghcr.io/workers-core/workers-core:latest"))
    assert "c0" in msg and "tagged latest" in msg


def test_untagged_is_rejected_and_a_registry_port_is_not_a_tag() -> None:
    assert len(violations(_pod("redis", "localhost:5000/workers-core"))) == 2


def test_init_containers_are_checked_too() -> None:
    [msg] = violations(_pod("redis:7.4.2", init=("busybox:latest",)))
    assert "i0" in msg


@pytest.mark.parametrize("image", [
    "ghcr.io/workers-core/workers-core:0.1.0-core",
    "localhost:5000/workers-core:0.1.0",
    "ghcr.io/workers-core/workers-core@sha256:" + "0" * 64,
])
def test_pinned_images_pass(image: str) -> None:
    assert violations(_pod(image)) == []


def test_exempt_images_pass() -> None:
    assert violations(_pod("registry.local/tools:latest"), exempt=["registry.local/"]) == []


@pytest.mark.parametrize("path", K8S_MANIFESTS, ids=lambda p: p.name)
def test_our_manifests_pass_the_policy(path: Any) -> None:
    for doc in load_docs(path):
        for where, template in pod_templates(doc):
            assert violations(template["spec"]) == [], where
