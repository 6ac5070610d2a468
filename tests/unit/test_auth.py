"""Bearer tokens and scopes at the gateway: the app from create_api over real Redis."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from pydantic import SecretStr

from workers_core.config import Settings
from workers_core.deployments.api import GatewayState, create_api
from workers_core.deployments.completion import CompletionWaiter
from workers_core.errors import ConfigError
from workers_core.jobs.store import JobStore
from workers_core.security.scopes import Scope
from workers_core.security.tokens import mint_token, public_jwk
from workers_core.tasks.registry import TaskCatalog

ALL = [s.value for s in Scope]
JOB = {"task": "debug.echo", "payload": {"message": "salut"}}


def build_app(settings: Settings, store: JobStore) -> FastAPI:
    return create_api(GatewayState(
        settings=settings, store=store, catalog=TaskCatalog.discover(),
        waiter=CompletionWaiter(store.redis, store.keys.done_channel)))


def client(app: FastAPI, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw",
                             headers=headers)


@pytest.fixture
def secret() -> str:
    return secrets.token_urlsafe(48)  # made for this test, never stored


@pytest.fixture
def hs_settings(settings: Settings, secret: str) -> Settings:
    return settings.model_copy(update={"auth_jwt_secret": SecretStr(secret)})


@pytest.fixture
async def app(hs_settings: Settings, store: JobStore) -> FastAPI:
    return build_app(hs_settings, store)


def hs_token(secret: str, scopes: list[str], sub: str = "ana", ttl_s: float = 300,
             **claims: Any) -> str:
    if not claims:
        return mint_token(secret, "HS256", sub, scopes, ttl_s)
    body = {"sub": sub, "exp": int(time.time() + ttl_s), "scope": " ".join(scopes), **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, "HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any], alg: str = "none", key: bytes = b"") -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    if alg == "none":
        return f"{header}.{body}."
    sig = hmac.new(key, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(sig)}"


async def test_a_call_without_a_token_is_401_with_a_bearer_challenge(app: FastAPI) -> None:
    async with client(app) as http:
        resp = await http.get("/v1/jobs")
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["type"].endswith("/invalid-token")
    # RFC 6750 §3.1: a request without credentials gets no error code.
    assert resp.headers["www-authenticate"] == 'Bearer realm="workers-core"'


@pytest.mark.parametrize("header", ["Bearer not-a-jwt", "Bearer a.b.c", "Basic YTpi", "Bearer"])
async def test_malformed_credentials_are_401(app: FastAPI, header: str) -> None:
    async with client(app) as http:
        resp = await http.get("/v1/jobs", headers={"Authorization": header})
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith('Bearer realm="workers-core"')


async def test_an_expired_token_is_401_invalid_token(app: FastAPI, secret: str) -> None:
    token = hs_token(secret, ALL, ttl_s=-120)  # past the 30 s leeway
    async with client(app, token) as http:
        resp = await http.get("/v1/jobs")
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    assert "expired" in resp.json()["detail"]


async def test_a_token_signed_with_another_secret_is_401(app: FastAPI) -> None:
    async with client(app, hs_token(secrets.token_urlsafe(48), ALL)) as http:
        resp = await http.get("/v1/jobs")
    assert resp.status_code == 401 and "Signature" in resp.json()["detail"]


async def test_an_unsigned_alg_none_token_is_401(app: FastAPI) -> None:
    token = unsigned_token({"sub": "eve", "exp": int(time.time()) + 300, "scope": " ".join(ALL)})
    async with client(app, token) as http:
        resp = await http.get("/v1/jobs")
    assert resp.status_code == 401


@pytest.mark.parametrize("claims", [{"sub": None}, {"exp": None}, {"sub": ""}])
async def test_a_token_without_sub_or_exp_is_401(app: FastAPI, secret: str,
                                                 claims: dict[str, Any]) -> None:
    async with client(app, hs_token(secret, ALL, **claims)) as http:
        resp = await http.get("/v1/jobs")
    assert resp.status_code == 401


async def test_audience_and_issuer_are_checked_when_set(
    hs_settings: Settings, store: JobStore, secret: str,
) -> None:
    app = build_app(hs_settings.model_copy(update={
        "auth_jwt_audience": "workers", "auth_jwt_issuer": "https://idp.firma.ro"}), store)
    good = hs_token(secret, ALL, aud="workers", iss="https://idp.firma.ro")
    wrong_aud = hs_token(secret, ALL, aud="billing", iss="https://idp.firma.ro")
    wrong_iss = hs_token(secret, ALL, aud="workers", iss="https://evil.example")
    async with client(app) as http:
        answers = [(await http.get("/v1/jobs", headers={"Authorization": f"Bearer {t}"}))
                   .status_code for t in (good, wrong_aud, wrong_iss)]
    assert answers == [200, 401, 401]


async def test_a_token_without_the_scope_is_403_naming_it(app: FastAPI, secret: str) -> None:
    async with client(app, hs_token(secret, [Scope.JOBS_READ])) as http:
        resp = await http.post("/v1/jobs", json=JOB)
    assert resp.status_code == 403
    assert resp.json()["required_scope"] == "jobs:write"
    assert resp.headers["www-authenticate"] == (
        'Bearer realm="workers-core", error="insufficient_scope", scope="jobs:write"')


async def test_each_scope_opens_its_routes_only(app: FastAPI, secret: str) -> None:
    async def status(scopes: list[str], method: str, path: str, **kw: Any) -> int:
        async with client(app, hs_token(secret, scopes)) as http:
            return (await http.request(method, path, **kw)).status_code

    assert await status(["jobs:read"], "GET", "/v1/jobs") == 200
    assert await status(["jobs:read"], "GET", "/v1/queues") == 200
    assert await status(["jobs:write"], "GET", "/v1/jobs") == 403
    assert await status(["jobs:write"], "POST", "/v1/jobs", json=JOB) == 202
    assert await status(["jobs:write"], "GET", "/v1/audit") == 403
    assert await status(["ops:admin"], "GET", "/v1/audit") == 200
    assert await status(["ops:admin"], "POST", "/v1/jobs", json=JOB) == 403


async def test_scopes_may_come_as_an_scp_list(app: FastAPI, secret: str) -> None:
    token = jwt.encode({"sub": "svc", "exp": int(time.time()) + 60, "scp": ["jobs:read"]},
                       secret, "HS256")
    async with client(app, token) as http:
        assert (await http.get("/v1/jobs")).status_code == 200


async def test_routes_added_later_fall_under_the_policy(app: FastAPI, secret: str) -> None:
    async def gadget(gadget_id: str) -> dict[str, str]:
        return {"gadget": gadget_id}

    app.add_api_route("/v1/gadgets/{gadget_id}", gadget, methods=["GET", "DELETE"])
    async with client(app, hs_token(secret, ["jobs:write", "jobs:read"])) as http:
        assert (await http.get("/v1/gadgets/7")).json() == {"gadget": "7"}
        # Not in any rule and mutating: the strictest scope, never open.
        assert (await http.delete("/v1/gadgets/7")).json()["required_scope"] == "ops:admin"
        assert (await http.delete("/v1/workers/ocr-1")).json()["required_scope"] == (
            "workers:admin")
    async with client(app, hs_token(secret, ["ops:admin"])) as http:
        assert (await http.delete("/v1/gadgets/7")).json() == {"gadget": "7"}
    async with client(app, hs_token(secret, ["workers:admin"])) as http:
        assert (await http.delete("/v1/workers/ocr-1")).status_code != 403


async def test_health_metrics_and_docs_need_no_token(app: FastAPI) -> None:
    async with client(app) as http:
        for path in ("/healthz", "/openapi.json", "/docs", "/metrics"):
            assert (await http.get(path)).status_code == 200, path


async def test_openapi_declares_the_bearer_scheme_and_each_scope(app: FastAPI) -> None:
    async with client(app) as http:
        spec = (await http.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    submit = spec["paths"]["/v1/jobs"]["post"]
    assert submit["security"] == [{"bearerAuth": []}]
    assert submit["x-required-scope"] == "jobs:write"
    assert spec["paths"]["/healthz"]["get"]["security"] == []


def rsa_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


async def test_rs256_with_a_pem_public_key(settings: Settings, store: JobStore,
                                           tmp_path: Path) -> None:
    private, public = rsa_pair()
    (tmp_path / "pub.pem").write_bytes(public)
    app = build_app(settings.model_copy(
        update={"auth_jwt_public_key_file": tmp_path / "pub.pem"}), store)
    token = mint_token(private, "RS256", "ana", ["jobs:read"], 60)
    # HS/RS confusion: an HS256 token whose "secret" is the public key must not pass.
    forged = unsigned_token({"sub": "eve", "exp": int(time.time()) + 60, "scope": "jobs:read"},
                            alg="HS256", key=public)
    async with client(app) as http:
        ok = await http.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"})
        bad = await http.get("/v1/jobs", headers={"Authorization": f"Bearer {forged}"})
    assert (ok.status_code, bad.status_code) == (200, 401)


async def test_rs256_with_a_jwks_picks_the_key_by_kid(settings: Settings, store: JobStore,
                                                      tmp_path: Path) -> None:
    (old_private, old_public), (new_private, new_public) = rsa_pair(), rsa_pair()
    jwks = {"keys": [public_jwk(old_public, "2025"), public_jwk(new_public, "2026")]}
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    app = build_app(settings.model_copy(update={"auth_jwks_file": tmp_path / "jwks.json"}),
                    store)
    tokens = [mint_token(old_private, "RS256", "ana", ["jobs:read"], 60, kid="2025"),
              mint_token(new_private, "RS256", "ana", ["jobs:read"], 60, kid="2026"),
              mint_token(new_private, "RS256", "ana", ["jobs:read"], 60, kid="2025"),
              mint_token(new_private, "RS256", "ana", ["jobs:read"], 60, kid="1999")]
    async with client(app) as http:
        answers = [(await http.get("/v1/jobs", headers={"Authorization": f"Bearer {t}"}))
                   .status_code for t in tokens]
    assert answers == [200, 200, 401, 401]


def test_disabled_auth_is_refused_off_loopback(settings: Settings, store: JobStore) -> None:
    for mode in ("auto", "disabled"):
        off_loopback = settings.model_copy(update={"auth_mode": mode, "http_host": "0.0.0.0"})
        with pytest.raises(ConfigError, match="not loopback"):
            build_app(off_loopback, store)


def test_jwt_mode_without_a_key_or_with_two_keys_is_refused(
    settings: Settings, store: JobStore, tmp_path: Path, secret: str,
) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        build_app(settings.model_copy(update={"auth_mode": "jwt"}), store)
    (tmp_path / "s").write_text(secret)
    with pytest.raises(ConfigError, match="exactly one"):
        build_app(settings.model_copy(update={"auth_jwt_secret": SecretStr(secret),
                                              "auth_jwt_secret_file": tmp_path / "s"}), store)
    with pytest.raises(ConfigError, match="32 bytes"):
        build_app(settings.model_copy(update={"auth_jwt_secret": SecretStr("short")}), store)


async def test_a_key_allows_binding_all_interfaces(hs_settings: Settings, store: JobStore,
                                                   secret: str) -> None:
    app = build_app(hs_settings.model_copy(update={"http_host": "0.0.0.0"}), store)
    async with client(app, hs_token(secret, ["jobs:read"])) as http:
        assert (await http.get("/v1/jobs")).status_code == 200


async def test_disabled_auth_on_loopback_lets_everyone_in_as_anonymous(
    settings: Settings, store: JobStore,
) -> None:
    app = build_app(settings, store)  # the defaults: auto, no key, 127.0.0.1
    async with client(app) as http:
        assert (await http.post("/v1/jobs", json=JOB)).status_code == 202
        assert (await http.get("/v1/audit")).status_code == 200


async def test_workers_core_token_mints_what_the_gateway_accepts(app: FastAPI,
                                                                 secret: str) -> None:
    from click.testing import CliRunner

    from workers_core.cli import main

    result = CliRunner().invoke(
        main, ["token", "--sub", "ci", "--scope", "jobs:write", "--scope", "jobs:read",
               "--ttl", "5m"], env={"WORKERS_AUTH_JWT_SECRET": secret})
    assert result.exit_code == 0, result.output
    minted = result.output.strip()
    assert secret not in result.output and minted.count(".") == 2
    async with client(app, minted) as http:
        assert (await http.post("/v1/jobs", json=JOB)).status_code == 202
        assert (await http.get("/v1/audit")).json()["required_scope"] == "ops:admin"
    claims = jwt.decode(minted, secret, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 300 and claims["sub"] == "ci"
