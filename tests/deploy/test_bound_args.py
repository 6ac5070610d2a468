"""What ``build_app`` binds into Serve's deployment arguments (kept by the GCS, in Redis when
fault tolerance is on): the config's args, never the secrets each replica reads itself."""

from __future__ import annotations

import pickle
import secrets
from typing import Any

import pytest

from workers_core.deployments.app import build_app


def _bound(app: Any) -> list[Any]:
    """Every init argument of the gateway and of the pools bound into it."""
    gateway = app._bound_deployment
    settings, pools = gateway.init_args
    return [settings, *(pool._bound_deployment.init_args for pool in pools.values())]


def test_secrets_in_the_environment_are_not_bound_into_the_app(
        monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-" + secrets.token_hex(8)
    for name in ("WORKERS_SMTP_PASSWORD", "WORKERS_ANAF_CLIENT_SECRET", "WORKERS_REGES_PASSWORD",
                 "WORKERS_SLACK_BOT_TOKEN"):
        monkeypatch.setenv(name, secret)
    app = build_app({"redis_url": "redis://127.0.0.1:6390/0", "log_json": True})
    bound = _bound(app)
    assert bound[0] == {"redis_url": "redis://127.0.0.1:6390/0", "log_json": True}
    assert len(bound) > 5  # the pools were found, so their arguments were checked too
    assert secret.encode() not in pickle.dumps(bound)
