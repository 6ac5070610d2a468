"""Auth through the real Serve gateway: a second, gateway-only app with JWT auth on."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner
from pydantic import SecretStr
from ray import serve

from tests.integration.conftest import Platform
from workers_core.cli import main
from workers_core.deployments.app import build_platform

APP, PREFIX = "auth-it", "/auth-it"


@pytest.fixture(scope="module")
def secured(platform: Platform) -> Iterator[tuple[httpx.Client, str]]:
    secret = secrets.token_urlsafe(48)  # made for this run
    settings = platform.settings.model_copy(update={
        "auth_mode": "jwt", "auth_jwt_secret": SecretStr(secret), "enabled_queues": [],
        "redis_prefix": "it-auth"})
    serve.run(build_platform(settings), name=APP, route_prefix=PREFIX)
    with httpx.Client(base_url=platform.url + PREFIX, timeout=30) as http:
        deadline = time.monotonic() + 120
        while http.get("/healthz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.25)
        yield http, secret
    serve.delete(APP)


@pytest.mark.slow
def test_a_minted_token_is_accepted_and_scopes_enforced(
    secured: tuple[httpx.Client, str],
) -> None:
    http, secret = secured
    minted = CliRunner().invoke(main, ["token", "--sub", "ci", "--scope", "jobs:read"],
                                env={"WORKERS_AUTH_JWT_SECRET": secret})
    assert minted.exit_code == 0, minted.output
    bearer = {"Authorization": f"Bearer {minted.output.strip()}"}
    assert http.get("/v1/jobs").status_code == 401
    assert http.get("/v1/jobs", headers=bearer).status_code == 200
    refused = http.post("/v1/jobs", json={"task": "debug.echo", "payload": {}}, headers=bearer)
    assert refused.status_code == 403 and refused.json()["required_scope"] == "jobs:write"
