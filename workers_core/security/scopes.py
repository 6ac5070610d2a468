"""Scopes and the authenticated caller (``Principal``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    """What a token may do; OAuth2-style names, carried in the ``scope`` or ``scp`` claim."""

    JOBS_WRITE = "jobs:write"
    JOBS_READ = "jobs:read"
    WORKERS_ADMIN = "workers:admin"
    OPS_ADMIN = "ops:admin"


@dataclass(frozen=True)
class Principal:
    """The caller of one request: the token's ``sub`` and its scopes."""

    sub: str
    scopes: frozenset[str]
    anonymous: bool = False

    def allows(self, scope: Scope) -> bool:
        return scope.value in self.scopes


ANONYMOUS = Principal("anonymous", frozenset(s.value for s in Scope), anonymous=True)
