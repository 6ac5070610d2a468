"""`workers-core anaf login` and `token-status`: the browser step of ANAF's OAuth2 over real
HTTPS (a throwaway self-signed certificate), against the ANAF sandbox, tokens in real Redis.
An httpx client plays the browser; nothing secret may reach the output."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
import redis
from click.testing import CliRunner
from pydantic import SecretStr
from structlog.testing import capture_logs

from tests.conftest import free_port
from workers_core.cli import main
from workers_core.config import Settings
from workers_core.integrations.anaf.cli import EXIT_NO_LOGIN, EXIT_OK, EXIT_USAGE
from workers_core.integrations.anaf.login import (
    LoginFailed,
    LoginTimedOut,
    read_token_status,
    run_login,
    self_signed_pem,
)
from workers_core.integrations.anaf.oauth import REFRESH_LIFETIME_S, AnafOAuth, TokenSet
from workers_core.sandbox.anaf import AnafSandbox

DAY_S = 24 * 3600


@pytest.fixture
def anaf() -> Iterator[AnafSandbox]:
    with AnafSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def anaf_settings(settings: Settings, anaf: AnafSandbox) -> Settings:
    return Settings.model_validate(
        {
            **settings.model_dump(),
            "anaf_oauth_url": anaf.oauth_url,
            "anaf_api_url": anaf.api_url,
            "anaf_client_id": anaf.client_id,
            "anaf_client_secret": anaf.client_secret,
            "anaf_redirect_uri": f"https://localhost:{free_port()}/anaf/callback",
            "anaf_timeout_s": 5.0,
        }
    )


def env_of(s: Settings) -> dict[str, str]:
    """The WORKERS_* variables that make `Settings()` in a CLI equal ``s`` for ANAF."""
    assert s.anaf_client_secret is not None
    return {
        "WORKERS_REDIS_URL": s.redis_url,
        "WORKERS_REDIS_PREFIX": s.redis_prefix,
        "WORKERS_ANAF_OAUTH_URL": s.anaf_oauth_url,
        "WORKERS_ANAF_CLIENT_ID": s.anaf_client_id or "",
        "WORKERS_ANAF_CLIENT_SECRET": s.anaf_client_secret.get_secret_value(),
        "WORKERS_ANAF_REDIRECT_URI": s.anaf_redirect_uri,
        "WORKERS_ANAF_TIMEOUT_S": "5",
    }


class Browser:
    """Follows the authorize address to the callback, as a browser would (the throwaway
    certificate is accepted, as a person clicking through the warning does)."""

    def __init__(
        self, rewrite_state: str | None = None, verify: ssl.SSLContext | bool = False
    ) -> None:
        self.rewrite_state = rewrite_state
        self.verify = verify
        self.final: httpx.Response | None = None

    def __call__(self, url: str) -> None:
        if self.rewrite_state is not None:
            parts = urlsplit(url)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            query["state"] = self.rewrite_state
            url = urlunsplit(parts._replace(query=urlencode(query)))
        with httpx.Client(verify=self.verify, follow_redirects=True, timeout=10) as http:
            self.final = http.get(url)

    @property
    def code(self) -> str:
        assert self.final is not None
        return self.final.url.params["code"]


def secrets_of(s: Settings, anaf: AnafSandbox, tokens: TokenSet | None = None) -> set[str]:
    found = {anaf.client_secret, *anaf.state.access_tokens, *anaf.state.refresh_tokens}
    if tokens is not None:
        found |= {tokens.access_token.get_secret_value(), tokens.refresh_token.get_secret_value()}
    return found


async def test_login_end_to_end_stores_tokens_and_prints_no_secret(
    anaf_settings: Settings, anaf: AnafSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    browser, lines = Browser(), []
    with capture_logs() as logs:
        tokens = await run_login(
            anaf_settings, say=lines.append, open_browser=browser, timeout_s=60
        )
    assert browser.final is not None and browser.final.status_code == 200
    assert browser.final.url.path == "/anaf/callback"
    status = await read_token_status(anaf_settings, time.time())
    assert status.stored and status.access_valid and not status.login_needed
    assert status.access_expires_at is not None
    assert abs(status.access_expires_at.timestamp() - tokens.expires_at) < 1
    assert tokens.access_token.get_secret_value() in anaf.state.access_tokens  # ANAF's own

    output = "\n".join(lines)
    assert "self-signed" in output and "access token expires" in output
    assert status.access_expires_at.strftime("%Y-%m-%d") in output
    captured = capsys.readouterr()
    printed = f"{output}\n{captured.out}\n{captured.err}\n{logs}"
    assert not any(s in printed for s in {*secrets_of(anaf_settings, anaf, tokens), browser.code})


async def test_a_configured_certificate_is_served_instead_of_a_throwaway(
    anaf_settings: Settings, tmp_path: Path
) -> None:
    cert, key = self_signed_pem("localhost")  # stands in for a certificate the user owns
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    s = anaf_settings.model_copy(
        update={
            "anaf_callback_cert_file": tmp_path / "cert.pem",
            "anaf_callback_key_file": tmp_path / "key.pem",
        }
    )
    browser = Browser(verify=ssl.create_default_context(cafile=tmp_path / "cert.pem"))
    lines: list[str] = []
    await run_login(s, say=lines.append, open_browser=browser, timeout_s=60)
    assert browser.final is not None and browser.final.status_code == 200  # it trusted it
    assert not any("self-signed" in line for line in lines)


async def test_a_callback_with_another_state_is_refused_and_nothing_exchanged(
    anaf_settings: Settings, anaf: AnafSandbox
) -> None:
    browser = Browser(rewrite_state="forged-ștate")
    with pytest.raises(LoginFailed, match="state does not match"):
        await run_login(anaf_settings, say=lambda _: None, open_browser=browser, timeout_s=60)
    assert browser.final is not None and browser.final.status_code == 400
    assert anaf.state.token_requests == 0
    assert not (await read_token_status(anaf_settings, time.time())).stored


async def test_an_error_from_anaf_in_the_callback_is_reported(
    anaf_settings: Settings, anaf: AnafSandbox
) -> None:
    def denying_browser(url: str) -> None:  # ANAF sends the person back with ?error=…
        state = parse_qs(urlsplit(url).query)["state"][0]
        with httpx.Client(verify=False) as http:
            http.get(
                anaf_settings.anaf_redirect_uri, params={"error": "access_denied", "state": state}
            )

    with pytest.raises(LoginFailed, match="access_denied"):
        await run_login(
            anaf_settings, say=lambda _: None, open_browser=denying_browser, timeout_s=60
        )
    assert anaf.state.token_requests == 0


async def test_without_a_callback_the_login_times_out(anaf_settings: Settings) -> None:
    with pytest.raises(LoginTimedOut):
        await run_login(anaf_settings, say=lambda _: None, timeout_s=0.3)


async def test_an_http_redirect_uri_is_refused(anaf_settings: Settings) -> None:
    s = anaf_settings.model_copy(update={"anaf_redirect_uri": "http://localhost:8443/cb"})
    with pytest.raises(LoginFailed, match="https"):
        await run_login(s, say=lambda _: None, timeout_s=1)


def test_the_login_command_in_a_real_process(
    anaf_settings: Settings, anaf: AnafSandbox, tmp_path: Path
) -> None:
    env = {**os.environ, **env_of(anaf_settings), "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-c",
        "from workers_core.cli import main; main()",
        "anaf",
        "login",
        "--no-open",
        "--timeout",
        "120",
    ]
    browser = Browser()
    with subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        text=True,  # no .env there
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.strip().startswith(anaf.oauth_url):
                browser(line.strip())
                break
        out, err = proc.communicate(timeout=120)
    printed = "".join(lines) + out + err
    assert proc.returncode == EXIT_OK, printed
    assert "access token expires" in printed and "refresh token expires" in printed
    assert not any(s in printed for s in {*secrets_of(anaf_settings, anaf), browser.code})

    result = CliRunner().invoke(main, ["anaf", "token-status", "--json"], env=env_of(anaf_settings))
    assert result.exit_code == EXIT_OK, result.output
    status = json.loads(result.output)
    assert status["stored"] and status["access_valid"] and not status["login_needed"]
    assert not any(s in result.output for s in secrets_of(anaf_settings, anaf))


def token_status(s: Settings, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["anaf", "token-status", *args], env=env_of(s))
    return result.exit_code, result.output


def test_token_status_without_tokens_asks_for_a_login(anaf_settings: Settings) -> None:
    code, out = token_status(anaf_settings)
    assert code == EXIT_NO_LOGIN and "workers-core anaf login" in out
    code, out = token_status(anaf_settings, "--json")
    assert code == EXIT_NO_LOGIN
    assert json.loads(out) == {
        "client_id": anaf_settings.anaf_client_id,
        "stored": False,
        "access_expires_at": None,
        "refresh_expires_at": None,
        "obtained_at": None,
        "access_valid": False,
        "refresh_valid": False,
        "login_needed": True,
    }


def store_tokens(s: Settings, obtained_days_ago: float) -> None:
    """Tokens as a login ``obtained_days_ago`` would have left them (90 / 365 days)."""
    obtained = time.time() - obtained_days_ago * DAY_S
    tokens = TokenSet(
        access_token=SecretStr("a-" + os.urandom(8).hex()),
        refresh_token=SecretStr("r-" + os.urandom(8).hex()),
        expires_at=obtained + 90 * DAY_S,
        refresh_expires_at=obtained + REFRESH_LIFETIME_S,
        obtained_at=obtained,
    )
    client = redis.Redis.from_url(s.redis_url)
    oauth = AnafOAuth.from_settings(s, client)  # type: ignore[arg-type]
    asyncio.run(oauth.aclose())  # only its key is used
    client.set(oauth.store.key, tokens.dump())  # no TTL: an expired pair stays readable
    client.close()


def test_token_status_with_an_expired_access_token_is_still_usable(
    anaf_settings: Settings,
) -> None:
    store_tokens(anaf_settings, obtained_days_ago=100)
    code, out = token_status(anaf_settings)
    assert code == EXIT_OK, out
    assert "EXPIRED" in out and "renewed with the refresh token" in out


def test_token_status_with_both_tokens_expired_exits_non_zero(anaf_settings: Settings) -> None:
    store_tokens(anaf_settings, obtained_days_ago=400)
    code, out = token_status(anaf_settings)
    assert code == EXIT_NO_LOGIN and "workers-core anaf login" in out
    code, out = token_status(anaf_settings, "--json")
    assert code == EXIT_NO_LOGIN
    assert json.loads(out)["stored"] and json.loads(out)["login_needed"]


def test_commands_without_an_anaf_client_are_a_usage_error(settings: Settings) -> None:
    env = {
        "WORKERS_REDIS_URL": settings.redis_url,
        "WORKERS_ANAF_CLIENT_ID": "",
        "WORKERS_ANAF_CLIENT_SECRET": "",
    }
    result = CliRunner().invoke(main, ["anaf", "token-status"], env=env)
    assert result.exit_code == EXIT_USAGE and "WORKERS_ANAF_CLIENT_ID" in result.output
