"""``workers-core token``: mint a bearer token for local use (scripts, the SDK, /docs)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from workers_core.errors import ConfigError
from workers_core.security.scopes import Scope
from workers_core.security.tokens import hs256_secret, mint_token, rsa_private_key

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """``90``, ``90s``, ``30m``, ``1h``, ``7d`` -> seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not match or int(match.group(1)) == 0:
        raise click.BadParameter(f"{text!r} is not like 90s, 30m, 1h or 7d", param_hint="--ttl")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


@click.command("token")
@click.option("--sub", required=True, help="Who the token is for (the audit log's actor).")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice([s.value for s in Scope]), help="Repeatable.")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 90s, 30m, 1h, 7d.")
@click.option("--private-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Sign RS256 with this PEM private key (default: HS256 with the "
                   "configured WORKERS_AUTH_JWT_SECRET[_FILE]).")
@click.option("--kid", help="Key id for the header (RS256 with a JWKS).")
def token(sub: str, scopes: tuple[str, ...], ttl: str, private_key: Path | None,
          kid: str | None) -> None:
    """Print a signed bearer token; nothing else is printed or logged.

    \b
    Examples:
      workers-core token --sub ana --scope jobs:write --scope jobs:read --ttl 1h
      export WORKERS_API_TOKEN=$(workers-core token --sub ci --scope jobs:write)
      workers-core token --sub ops --scope ops:admin --private-key issuer.pem --kid 2026
    """
    from workers_core.config import Settings

    settings = Settings()
    try:
        if private_key is not None:
            key: object = rsa_private_key(private_key.read_bytes())
            algorithm = "RS256"
        else:
            key, algorithm = hs256_secret(settings), "HS256"
    except ConfigError as exc:
        click.echo(f"workers-core: {exc.message}", err=True)
        sys.exit(2)
    click.echo(mint_token(key, algorithm, sub, scopes, parse_ttl(ttl),
                          issuer=settings.auth_jwt_issuer, audience=settings.auth_jwt_audience,
                          kid=kid))
