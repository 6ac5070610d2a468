"""Bearer tokens (JWT): verified with one pinned algorithm and key, minted for local use.

HS256 with a shared secret, or RS256 with the issuer's public key (PEM) or a JWKS file in
which the token's ``kid`` picks the key. ``exp`` and ``sub`` are required; the scopes come
from ``scope`` (space-separated, OAuth2) or ``scp`` (a list).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from workers_core.config import Settings
from workers_core.errors import ConfigError, WorkersError
from workers_core.security.scopes import Principal

REQUIRED_CLAIMS = ["exp", "sub"]


class InvalidToken(WorkersError):
    """401: no token, or one that is malformed, badly signed, expired or not for us."""

    status_code = 401
    problem_type = "invalid-token"
    retryable = False


@dataclass(frozen=True)
class _KeyRing:
    """Keys of one algorithm: one key, or several told apart by ``kid`` (JWKS)."""

    algorithm: str
    default: Any = None
    by_kid: dict[str, Any] | None = None

    def key_for(self, token: str) -> Any:
        if self.by_kid is None:
            return self.default
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is None and len(self.by_kid) == 1:
            return next(iter(self.by_kid.values()))
        if not isinstance(kid, str) or kid not in self.by_kid:
            raise InvalidToken("the token's kid names no key in the JWKS")
        return self.by_kid[kid]


def _jwks_keys(text: str) -> dict[str, Any]:
    try:
        jwks = jwt.PyJWKSet.from_json(text)
    except (jwt.PyJWKSetError, jwt.InvalidKeyError, ValueError) as exc:
        raise ConfigError(f"unreadable JWKS: {exc}") from exc
    keys = {}
    for i, jwk in enumerate(jwks.keys):
        if jwk.key_type != "RSA" or jwk.algorithm_name not in ("RS256", None):
            continue  # a key for another algorithm can never verify an RS256 token here
        keys[jwk.key_id or f"#{i}"] = jwk.key
    if not keys:
        raise ConfigError("the JWKS holds no RSA key for RS256")
    return keys


_KEY_SOURCES = ("auth_jwt_secret", "auth_jwt_secret_file", "auth_jwt_public_key_file",
                "auth_jwks_file")


def configured_key_sources(settings: Settings) -> list[str]:
    """The key settings that are set: exactly one is what ``TokenVerifier`` needs."""
    return [name for name in _KEY_SOURCES if getattr(settings, name) is not None]


def _key_ring(settings: Settings) -> _KeyRing:
    chosen = configured_key_sources(settings)
    if len(chosen) != 1:
        raise ConfigError("auth needs exactly one of WORKERS_" + ", WORKERS_".join(
            n.upper() for n in _KEY_SOURCES) + f"; set: {', '.join(chosen) or 'none'}")
    try:
        if settings.auth_jwt_secret is not None:
            secret = settings.auth_jwt_secret.get_secret_value()
        elif settings.auth_jwt_secret_file is not None:
            secret = settings.auth_jwt_secret_file.read_text(encoding="utf-8").strip()
        elif settings.auth_jwt_public_key_file is not None:
            key = _rsa(settings.auth_jwt_public_key_file.read_bytes())
            if not isinstance(key, rsa.RSAPublicKey):
                raise ConfigError("WORKERS_AUTH_JWT_PUBLIC_KEY_FILE must hold a public key")
            return _KeyRing("RS256", default=key)
        else:
            assert settings.auth_jwks_file is not None
            text = settings.auth_jwks_file.read_text(encoding="utf-8")
            return _KeyRing("RS256", by_kid=_jwks_keys(text))
    except (OSError, ValueError, jwt.InvalidKeyError) as exc:
        raise ConfigError(f"cannot read the JWT key from {chosen[0]}: {exc}") from exc
    if len(secret.encode()) < 32:
        raise ConfigError("the HS256 secret must be at least 32 bytes (RFC 7518 §3.2)")
    return _KeyRing("HS256", default=secret)


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope, scp = claims.get("scope"), claims.get("scp")
    if isinstance(scope, str):
        return frozenset(scope.split())
    if isinstance(scp, list) and all(isinstance(s, str) for s in scp):
        return frozenset(scp)
    if isinstance(scp, str):
        return frozenset(scp.split())
    return frozenset()


class TokenVerifier:
    """``verify(token)`` -> the ``Principal``, or ``InvalidToken`` saying why not."""

    def __init__(self, keys: _KeyRing, issuer: str | None = None,
                 audience: str | None = None, leeway_s: float = 0.0) -> None:
        self._keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        return cls(_key_ring(settings), settings.auth_jwt_issuer, settings.auth_jwt_audience,
                   settings.auth_jwt_leeway_s)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token, self._keys.key_for(token), algorithms=[self._keys.algorithm],
                issuer=self.issuer, audience=self.audience, leeway=self.leeway_s,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"invalid token: {exc}") from None
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise InvalidToken("invalid token: sub must be a non-empty string")
        return Principal(sub=sub, scopes=_scopes(claims))


def mint_token(
    key: Any, algorithm: str, sub: str, scopes: Iterable[str], ttl_s: float, *,
    issuer: str | None = None, audience: str | None = None, kid: str | None = None,
    now: float | None = None,
) -> str:
    """A signed token for ``sub`` with these scopes, valid for ``ttl_s`` seconds."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "sub": sub, "scope": " ".join(sorted(set(scopes))), "iat": issued,
        "exp": issued + int(ttl_s), "jti": uuid.uuid4().hex,
    }
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def hs256_secret(settings: Settings) -> str:
    """The configured HS256 secret (for ``workers-core token``), or a ConfigError."""
    ring = _key_ring(settings)
    if ring.algorithm != "HS256":
        raise ConfigError("the gateway verifies RS256 tokens: mint with --private-key FILE")
    return str(ring.default)


def _rsa(pem: bytes) -> rsa.RSAPublicKey | rsa.RSAPrivateKey:
    return jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).prepare_key(pem)


def rsa_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (``workers-core token --private-key``), or ConfigError."""
    try:
        key = _rsa(pem)
    except (ValueError, jwt.InvalidKeyError) as exc:
        raise ConfigError(f"not an RSA key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError("--private-key must be an RSA private key (PEM)")
    return key


def public_jwk(public_pem: bytes, kid: str) -> dict[str, Any]:
    """A JWKS entry for an RSA public key (for tests and for publishing a key)."""
    key = _rsa(public_pem)
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}
