"""The one browser step of ANAF's OAuth2 (``workers-core anaf login``) and the token status.

The authorization code needs a person with a qualified certificate in a browser (notes/anaf.md
§2.2), so it is done once, from a shell: a one-shot HTTPS listener on the registered
redirect URI (ANAF accepts only ``https://`` callbacks, ``https://localhost:PORT/...``
included), the authorize address with a random ``state``, the callback checked against that
state, and the code exchanged at once (ANAF: within a minute) into tokens stored in Redis.
From then on ``AnafOAuth`` refreshes them headlessly.

Nothing here prints or logs a token, a code or the client secret: callers get expiry dates.
The listener's certificate comes from settings (``anaf_callback_cert_file`` /
``anaf_callback_key_file``) or is a throwaway self-signed one made at run time; the browser
warns about it once, which is expected for a callback on localhost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import secrets
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aioredis
import structlog
from pydantic import BaseModel, computed_field

from workers_core.config import Settings
from workers_core.errors import NonRetryable, StoreUnavailable
from workers_core.integrations.anaf.errors import AnafError
from workers_core.integrations.anaf.oauth import AnafOAuth, TokenSet
from workers_core.jobs.store import UNAVAILABLE

CALLBACK_WAIT_S = 300.0
_HANDSHAKE_TIMEOUT_S = 30.0

log = structlog.get_logger("workers_core.anaf.login")

Say = Callable[[str], None]


class LoginFailed(AnafError, NonRetryable):
    """The browser step did not yield a code we may exchange (mismatched state, ANAF said
    no, nobody came back in time, the callback address cannot be served)."""

    problem_type = "anaf-login-failed"


class LoginTimedOut(LoginFailed):
    problem_type = "anaf-login-timed-out"


@dataclass(frozen=True)
class Callback:
    """What ANAF's redirect brought back (RFC 6749 §4.1.2)."""

    code: str | None
    state: str | None
    error: str | None = None
    error_description: str | None = None


def _same_state(received: str | None, expected: str) -> bool:
    return received is not None and secrets.compare_digest(received.encode(), expected.encode())


# -- the callback listener -------------------------------------------------------------------


def _page(title: str, text: str) -> bytes:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"</head><body><h1>{escape(title)}</h1><p>{escape(text)}</p></body></html>"
    ).encode()


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackHttpServer
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != self.server.path:
            self._answer(404, "Not found", "This is only the ANAF login callback.")
            return
        query = parse_qs(url.query)

        def first(name: str) -> str | None:
            return query.get(name, [None])[0]

        callback = Callback(
            first("code"), first("state"), first("error"), first("error_description")
        )
        if not self.server.offer(callback):
            self._answer(409, "Already done", "This login already received its callback.")
        elif not _same_state(callback.state, self.server.expected_state):
            self._answer(400, "Login refused", "The callback does not belong to this login.")
        elif callback.error or not callback.code:
            self._answer(400, "Login refused", "ANAF did not grant access; see the terminal.")
        else:
            self._answer(200, "Login received", "You can close this tab; see the terminal.")

    def _answer(self, status: int, title: str, text: str) -> None:
        body = _page(title, text)
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """The default writes the request line, with the code in it, to stderr: never."""


class _CallbackHttpServer(ThreadingHTTPServer):
    """Accepts in the serving thread, does the TLS handshake in the request's thread: a
    browser refusing the self-signed certificate (or idling) never blocks the next try."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], path: str, tls: ssl.SSLContext, expected_state: str
    ) -> None:
        super().__init__(address, _CallbackHandler)
        self.path = path
        self.tls = tls
        self.expected_state = expected_state
        self.received: Callback | None = None
        self.arrived = threading.Event()
        self._lock = threading.Lock()

    def offer(self, callback: Callback) -> bool:
        """Only the first callback counts."""
        with self._lock:
            if self.received is not None:
                return False
            self.received = callback
        self.arrived.set()
        return True

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(_HANDSHAKE_TIMEOUT_S)
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:  # e.g. the browser's first "not trusted"
            log.debug("anaf.login.handshake_failed", error=type(exc).__name__)
            return
        try:
            _CallbackHandler(conn, client_address, self)
        finally:
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("anaf.login.request_failed", client=str(client_address))


class CallbackServer:
    """``with CallbackServer(redirect_uri, tls, state) as server: server.wait(300)``."""

    def __init__(self, redirect_uri: str, tls: ssl.SSLContext, expected_state: str) -> None:
        url = urlsplit(redirect_uri)
        if url.scheme != "https" or not url.hostname:
            raise LoginFailed(
                f"the redirect URI {redirect_uri!r} must be https://HOST[:PORT]/PATH "
                "(ANAF refuses http:// callbacks)"
            )
        self.host = url.hostname
        self.port = url.port or 443
        try:
            self._server = _CallbackHttpServer(
                (self.host, self.port), url.path or "/", tls, expected_state
            )
        except OSError as exc:
            raise LoginFailed(
                f"cannot listen on {self.host}:{self.port} for the callback: {exc.strerror or exc}"
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    def __enter__(self) -> CallbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait(self, timeout_s: float) -> Callback:
        """The first callback; ``LoginTimedOut`` if none came in ``timeout_s``."""
        if not self._server.arrived.wait(timeout_s):
            raise LoginTimedOut(f"no callback from ANAF within {timeout_s:.0f} s")
        assert self._server.received is not None
        return self._server.received


# -- TLS for the listener ----------------------------------------------------------------------


def self_signed_pem(host: str) -> tuple[bytes, bytes]:
    """A throwaway certificate and key (PEM) for ``host``, valid one day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    alt_names: list[x509.GeneralName] = [x509.DNSName(host)]
    if host == "localhost":
        alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def callback_tls(settings: Settings, say: Say) -> ssl.SSLContext:
    """The configured certificate, or a self-signed one made now (and the browser warning
    announced). The throwaway key lives in a private temp file only while it is loaded."""
    cert_file = settings.anaf_callback_cert_file
    key_file = settings.anaf_callback_key_file
    context = _server_context()
    if cert_file is not None:
        try:
            context.load_cert_chain(Path(cert_file), Path(key_file) if key_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise LoginFailed(f"cannot load the callback certificate {cert_file}: {exc}") from exc
        return context
    host = urlsplit(settings.anaf_redirect_uri).hostname or "localhost"
    cert_pem, key_pem = self_signed_pem(host)
    with tempfile.TemporaryDirectory(prefix="workers-core-login-") as tmp:
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_path.write_bytes(cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key_pem)
        context.load_cert_chain(cert_path, key_path)
    say(
        f"The callback on {host} uses a self-signed certificate made for this login: the "
        "browser will warn about it; accept it to finish (or set "
        "WORKERS_ANAF_CALLBACK_CERT_FILE / _KEY_FILE)."
    )
    return context


# -- the flow ---------------------------------------------------------------------------------


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _check(callback: Callback, state: str) -> str:
    """The code, if this callback may be exchanged."""
    if not _same_state(callback.state, state):
        raise LoginFailed(
            "the callback's state does not match this login (a stale tab, another login, or "
            "a forged request); nothing was exchanged: run `workers-core anaf login` again"
        )
    if callback.error:
        detail = f": {callback.error_description}" if callback.error_description else ""
        raise LoginFailed(f"ANAF refused the authorization ({callback.error}){detail}")
    if not callback.code:
        raise LoginFailed("the callback carried no authorization code")
    return callback.code


async def login(
    oauth: AnafOAuth,
    tls: ssl.SSLContext,
    *,
    say: Say,
    open_browser: Callable[[str], object] | None = None,
    timeout_s: float = CALLBACK_WAIT_S,
) -> TokenSet:
    """Serve the callback, send the person to ANAF, exchange the code, store the tokens."""
    state = secrets.token_urlsafe(24)
    with CallbackServer(oauth.redirect_uri, tls, state) as server:
        url = oauth.authorize_url(state)
        say("Log in with your qualified certificate at:")
        say(f"  {url}")
        say(f"Waiting up to {timeout_s:.0f} s for ANAF to call back {oauth.redirect_uri} …")
        if open_browser is not None:
            await asyncio.to_thread(open_browser, url)
        callback = await asyncio.to_thread(server.wait, timeout_s)
    tokens = await oauth.exchange_code(_check(callback, state))
    say("Authorised; tokens stored in Redis.")
    say(f"  access token expires  {_when(tokens.expires_at)}")
    say(f"  refresh token expires {_when(tokens.refresh_expires_at)}")
    return tokens


def _redis(settings: Settings) -> aioredis.Redis:
    return aioredis.from_url(settings.redis_url, **settings.redis_kwargs())


async def run_login(
    settings: Settings,
    *,
    say: Say,
    open_browser: Callable[[str], object] | None = None,
    timeout_s: float = CALLBACK_WAIT_S,
) -> TokenSet:
    """``login`` with the clients and certificate ``settings`` describe."""
    redis = _redis(settings)
    try:
        oauth = AnafOAuth.from_settings(settings, redis)
        try:
            await redis.ping()
            tls = callback_tls(settings, say)
            return await login(oauth, tls, say=say, open_browser=open_browser, timeout_s=timeout_s)
        finally:
            await oauth.aclose()
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"Redis is unreachable: {type(exc).__name__}") from exc
    finally:
        await redis.aclose()


# -- token status -----------------------------------------------------------------------------


class TokenStatus(BaseModel):
    """What ``workers-core anaf token-status --json`` prints (no token in it)."""

    client_id: str
    stored: bool
    access_expires_at: dt.datetime | None = None
    refresh_expires_at: dt.datetime | None = None
    obtained_at: dt.datetime | None = None
    access_valid: bool = False
    refresh_valid: bool = False

    @computed_field  # type: ignore[prop-decorator]
    @property
    def login_needed(self) -> bool:
        """No token the platform can use or renew on its own: a person must log in."""
        return not (self.access_valid or self.refresh_valid)


def token_status(client_id: str, tokens: TokenSet | None, now: float) -> TokenStatus:
    if tokens is None:
        return TokenStatus(client_id=client_id, stored=False)

    def at(ts: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(ts, dt.UTC)

    return TokenStatus(
        client_id=client_id,
        stored=True,
        access_expires_at=at(tokens.expires_at),
        refresh_expires_at=at(tokens.refresh_expires_at),
        obtained_at=at(tokens.obtained_at),
        access_valid=tokens.expires_at > now,
        refresh_valid=tokens.refresh_expires_at > now,
    )


async def read_token_status(settings: Settings, now: float) -> TokenStatus:
    """The stored tokens' expiry (one Redis read; ANAF is not called)."""
    redis = _redis(settings)
    try:
        oauth = AnafOAuth.from_settings(settings, redis)
        try:
            tokens = await oauth.store.load()
        finally:
            await oauth.aclose()
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"Redis is unreachable: {type(exc).__name__}") from exc
    finally:
        await redis.aclose()
    return token_status(oauth.client_id, tokens, now)


def describe_status(status: TokenStatus, now: float) -> list[str]:
    """Human lines for ``token-status``."""
    if not status.stored:
        return [
            f"no ANAF tokens stored for client {status.client_id}: run `workers-core anaf login`"
        ]

    def line(label: str, when: dt.datetime | None, valid: bool) -> str:
        assert when is not None
        days = (when.timestamp() - now) / 86400
        verdict = f"valid, {days:.0f} days left" if valid else "EXPIRED"
        return f"  {label:<14} {when.strftime('%Y-%m-%d %H:%M UTC')}  ({verdict})"

    lines = [
        f"ANAF tokens for client {status.client_id}:",
        line("access token", status.access_expires_at, status.access_valid),
        line("refresh token", status.refresh_expires_at, status.refresh_valid),
    ]
    if status.login_needed:
        lines.append("both expired: run `workers-core anaf login`")
    elif not status.access_valid:
        lines.append("the access token is renewed with the refresh token on next use")
    return lines
