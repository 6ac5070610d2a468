"""docker/: what can be checked without a Docker daemon, and the install it performs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from tests.deploy.manifests import REPO, image_problem

DOCKERFILE = REPO / "docker" / "Dockerfile"
INSTALL = REPO / "docker" / "install.sh"
TARGETS = ("core", "ocr", "pdf")


def _parser() -> DockerfileParser:
    return DockerfileParser(str(DOCKERFILE))


def _stages() -> dict[str, list[dict[str, str]]]:
    """Instructions by stage name (the `AS` of each FROM)."""
    stages: dict[str, list[dict[str, str]]] = {}
    current: list[dict[str, str]] = []
    for ins in _parser().structure:
        if ins["instruction"] == "FROM":
            current = stages.setdefault(ins["value"].split()[-1], [])
        current.append(ins)
    return stages


def _base_image() -> str:
    [arg] = [i["value"] for i in _parser().structure
             if i["instruction"] == "ARG" and i["value"].startswith("PYTHON_IMAGE=")]
    return arg.split("=", 1)[1]


def _lineage(stage: str) -> list[str]:
    """A stage and the stages it is built FROM, up to the base image."""
    stages, chain = _stages(), [stage]
    while (parent := stages[chain[-1]][0]["value"].split()[0]) in stages:
        chain.append(parent)
    return chain


def test_dockerfile_parses_into_the_build_and_image_stages() -> None:
    assert set(TARGETS) | {"build", "runtime"} <= set(_stages())


def test_base_image_is_python_3_11_slim_pinned_by_version() -> None:
    base = _base_image()
    assert image_problem(base) is None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    roots = {ins[0]["value"].split()[0] for ins in _stages().values()}
    assert roots <= set(_stages()) | {"${PYTHON_IMAGE}"}


@pytest.mark.parametrize("target", TARGETS)
def test_each_image_runs_as_user_1000(target: str) -> None:
    users = [i["value"] for i in _stages()[target] if i["instruction"] == "USER"]
    assert users and users[-1].split(":")[0] == "1000"
    assert _lineage(target)[-1] == "runtime"


def test_chromium_is_only_in_the_pdf_image() -> None:
    with_chromium = {name for name, ins in _stages().items()
                     if any(i["instruction"] == "RUN" and "chromium" in i["value"] for i in ins)}
    assert with_chromium == {"pdf"}


def test_images_carry_oci_and_provenance_labels() -> None:
    """Set in `runtime`, which every image is built from."""
    text = " ".join(i["value"] for i in _stages()["runtime"] if i["instruction"] == "LABEL")
    labels = set(re.findall(r"org\.opencontainers\.image\.([\w.]+)=", text))
    assert {"title", "version", "revision", "created", "source", "licenses",
            "base.name"} <= labels


def test_dependencies_are_installed_before_the_source_is_copied() -> None:
    """The dependency layer stays cached while only workers_core/ changes."""
    for stage in ("build-core", "build-ocr", "build-pdf"):
        values = [f"{i['instruction']} {i['value']}" for i in _stages()[stage]]
        deps = next(n for n, v in enumerate(values) if "install-workers-core deps" in v)
        source = next(n for n, v in enumerate(values) if v.startswith("COPY workers_core"))
        assert deps < source, stage


def test_dockerignore_keeps_secrets_and_environments_out() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in lines  # everything is left out unless named
    assert not any(line.startswith("!.env") or line.startswith("!.venv") for line in lines)


@pytest.mark.slow
def test_package_installs_into_a_clean_venv_as_the_dockerfile_does(tmp_path: Path) -> None:
    """docker/install.sh deps, then project, into a fresh directory (uv's local cache)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "workers_core", src / "workers_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))}
    env |= {"UV_PROJECT_ENVIRONMENT": str(venv), "UV_COMPILE_BYTECODE": "0"}
    for phase in ("deps", "project"):
        subprocess.run(["sh", str(INSTALL), phase], cwd=src, env=env, check=True,
                       capture_output=True, timeout=280)
    python = venv / "bin" / "python"
    found = subprocess.run(
        [str(python), "-c", "import workers_core.deployments.app as m; print(m.__file__)"],
        cwd=tmp_path, check=True, capture_output=True, text=True, timeout=120)
    assert Path(found.stdout.strip()).is_relative_to(venv)  # installed, not editable
    assert subprocess.run([str(venv / "bin" / "workers-core"), "--help"], cwd=tmp_path,
                          capture_output=True, timeout=120).returncode == 0
    extras = subprocess.run([str(python), "-c", "import playwright"], capture_output=True)
    assert extras.returncode != 0  # the core image has no PDF extra
