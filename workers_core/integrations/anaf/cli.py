"""`workers-core anaf`: the one-time OAuth2 login with a qualified certificate, and the
status of the stored tokens. Neither prints a token.

Exit codes:
  0 ok (token-status: tokens the platform can use or renew)
  2 ANAF client not configured (WORKERS_ANAF_CLIENT_ID / _SECRET) or bad usage
  3 login refused (state mismatch, ANAF said no); token-status: no usable tokens, log in
  5 login: no callback within --timeout
  7 Redis or ANAF unreachable
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import webbrowser
from typing import NoReturn

import click

from workers_core.config import Settings
from workers_core.errors import StoreUnavailable
from workers_core.integrations.anaf.errors import (
    AnafNotAuthorised,
    AnafRejected,
    AnafTemporaryError,
)
from workers_core.integrations.anaf.login import (
    CALLBACK_WAIT_S,
    LoginFailed,
    LoginTimedOut,
    describe_status,
    read_token_status,
    run_login,
)
from workers_core.logs import configure_logging

EXIT_OK, EXIT_USAGE, EXIT_NO_LOGIN, EXIT_TIMEOUT, EXIT_UNAVAILABLE = 0, 2, 3, 5, 7


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"workers-core: {message}", err=True)
    sys.exit(code)


@click.group()
def anaf() -> None:
    """ANAF OAuth2 for e-Factura and e-Transport: log in once, check the stored tokens.

    Settings: WORKERS_ANAF_CLIENT_ID, WORKERS_ANAF_CLIENT_SECRET (ANAF 'Profil OAuth'),
    WORKERS_ANAF_REDIRECT_URI (the callback registered there), WORKERS_ANAF_OAUTH_URL,
    WORKERS_REDIS_URL (where the tokens are kept).
    """


@anaf.command()
@click.option(
    "--open/--no-open",
    "open_browser",
    default=True,
    show_default=True,
    help="Open the login address in the default browser.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=1),
    default=CALLBACK_WAIT_S,
    show_default=True,
    help="Seconds to wait for ANAF's callback.",
)
def login(open_browser: bool, timeout_s: float) -> None:
    """Authorise the platform with ANAF once, in a browser with your qualified certificate.

    Listens on WORKERS_ANAF_REDIRECT_URI (https; default https://localhost:8443/anaf/callback),
    prints the login address, exchanges the code ANAF sends back and stores the tokens in
    Redis; the platform refreshes them from then on (the refresh token lasts 365 days and
    is renewed with every refresh).

    \b
    Examples:
      workers-core anaf login
      workers-core anaf login --no-open     # on a server: open the address elsewhere
    """
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    opener = webbrowser.open if open_browser else None
    try:
        asyncio.run(run_login(settings, say=click.echo, open_browser=opener, timeout_s=timeout_s))
    except AnafNotAuthorised as exc:  # the client id / secret are missing
        _fail(EXIT_USAGE, exc.message)
    except LoginTimedOut as exc:
        _fail(EXIT_TIMEOUT, f"{exc.message}; nothing was stored")
    except (LoginFailed, AnafRejected) as exc:
        _fail(EXIT_NO_LOGIN, exc.message)
    except (StoreUnavailable, AnafTemporaryError) as exc:
        _fail(EXIT_UNAVAILABLE, exc.message)


@anaf.command("token-status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (for monitoring).")
def token_status(as_json: bool) -> None:
    """Whether ANAF tokens are stored and when they expire; exits 3 when a login is needed.

    \b
    Examples:
      workers-core anaf token-status
      workers-core anaf token-status --json | jq .refresh_expires_at
    """
    settings = Settings()
    now = time.time()
    try:
        status = asyncio.run(read_token_status(settings, now))
    except AnafNotAuthorised as exc:
        _fail(EXIT_USAGE, exc.message)
    except StoreUnavailable as exc:
        _fail(EXIT_UNAVAILABLE, exc.message)
    if as_json:
        click.echo(json.dumps(status.model_dump(mode="json"), indent=2))
    else:
        for line in describe_status(status, now):
            click.echo(line)
    sys.exit(EXIT_NO_LOGIN if status.login_needed else EXIT_OK)
