"""An ANAF sandbox: the OAuth2 token endpoint and the v9 taxpayer lookup, over real HTTP.

Protocol as notes/anaf.md records it:

- ``POST /anaf-oauth2/v1/token`` (form, HTTP Basic ``client_id:client_secret``):
  ``authorization_code`` (code single-use, 5 min, ``redirect_uri`` must match) and
  ``refresh_token``. Every refresh ROTATES both tokens: the old refresh token is spent and
  answers ``invalid_grant`` if used again (ANAF: "persist both"). ``GET
  /anaf-oauth2/v1/authorize`` redirects straight back with a code (no certificate here).
- ``GET /TestOauth/jaxrs/hello?name=x`` with ``Bearer``: the token smoke test; 401 JSON.
- ``POST /api/PlatitorTvaRest/v9/tva``: JSON array of ``{"cui", "data"}``; at most 100 CUIs
  (HTTP 400 with a Spring-style JSON body) and 1 request/s per client, ENFORCED. ANAF does
  not document its answer to an overload ("va fi pedepsita"); clients report a 429 or the
  WAF page, so ``over_limit`` picks one (default 429 with ``Retry-After: 1``).
- The WAF: an HTML "Request Rejected" page with HTTP 200, on demand or for a body holding
  ``<script`` (a signature-like trigger).

Fault injection (``fail_next``): delay, 5xx, 429 with ``Retry-After``, dropped connection,
WAF page. Control and inspection live under ``/_sandbox/``. Error texts marked
"sandbox" are ours, not ANAF's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from workers_core.integrations.anaf.cui import with_check_digit
from workers_core.sandbox.anaf_efactura import EfacturaState, add_efactura_routes, schema_check
from workers_core.sandbox.anaf_etransport import EtransportState, add_etransport_routes
from workers_core.sandbox.anaf_etransport import schema_check as etransport_check
from workers_core.sandbox.server import (
    LoopbackServer,
    ScriptedFaults,
    address_args,
    drop_connection,
    pop_failure,
    schemas_or_none,
    serve_until_interrupted,
)

CLIENT_ID = "sandbox-client-id"
LOOKUP_PATH = "/api/PlatitorTvaRest/v9/tva"
TOKEN_PATH = "/anaf-oauth2/v1/token"
MAX_CUIS = 100
ACCESS_TTL_S = 90 * 24 * 3600  # 129600 min (ANAF OAuth PDF)
CODE_TTL_S = 300
WAF_PAGE = (
    "<html><head><title>Request Rejected</title></head><body>The requested URL was "
    "rejected. Please consult with your administrator.<br><br>Your support ID is: "
    "{support_id}<br><br><a href='javascript:history.back();'>[Go Back]</a>"
    "</body></html>"
)


@dataclass
class ScriptedFailure:
    """How the sandbox answers the next request (to ``route``, a path prefix, if given).

    ``status`` None only delays; 429 adds ``Retry-After``; ``drop`` sends headers then closes
    the connection; ``waf`` answers the WAF page with HTTP 200. ``act_first``: the request IS
    handled (an upload is recorded), then the answer is delayed by ``delay_s`` or dropped:
    ANAF acted and the client never heard (odoo/odoo#198604).
    """

    status: int | None = 503
    retry_after_s: int | None = None
    delay_s: float = 0.0
    drop: bool = False
    waf: bool = False
    route: str | None = None
    act_first: bool = False


@dataclass
class LookupCall:
    at: float  # time.monotonic() on arrival
    client: str
    cuis: int
    status: int


def company(
    cui: int,
    name: str,
    county: str = "B",
    *,
    vat: bool = True,
    inactive: bool = False,
    split_vat: bool = False,
    vat_on_collection: bool = False,
    e_invoice: bool = False,
) -> dict[str, Any]:
    """A registry entry shaped like a v9 ``found`` item (``data`` is filled per request)."""
    address = {
        "denumire_Strada": "Str. Exemplu",
        "numar_Strada": "1",
        "denumire_Localitate": "Mun. București Sector 1" if county == "B" else "Timișoara",
        "cod_Localitate": "179",
        "denumire_Judet": "MUNICIPIUL BUCUREŞTI" if county == "B" else "TIMIŞ",
        "cod_Judet": "40" if county == "B" else "35",
        "cod_JudetAuto": county,
        "tara": "",
        "detalii_Adresa": "",
        "cod_Postal": "010101",
    }
    return {
        "date_generale": {
            "cui": cui,
            "data": "",
            "denumire": name,
            "adresa": "MUNICIPIUL BUCUREŞTI, SECTOR 1, STR. EXEMPLU, NR.1",
            "nrRegCom": f"J40/{cui % 9999}/2012",
            "telefon": "",
            "fax": "",
            "codPostal": "010101",
            "act": "",
            "stare_inregistrare": "INREGISTRAT din data 26.10.2012",
            "data_inregistrare": "2012-10-26",
            "cod_CAEN": "6201",
            "iban": "",
            "statusRO_e_Factura": e_invoice,
            "data_inreg_Reg_RO_e_Factura": "2022-01-01" if e_invoice else "",
            "organFiscalCompetent": "Administraţia Sector 1 a Finanţelor Publice",
            "forma_de_proprietate": "PROPR.PRIVATA-CAPITAL PRIVAT AUTOHTON",
            "forma_organizare": "PERSOANA JURIDICA",
            "forma_juridica": "SOCIETATE COMERCIALĂ CU RĂSPUNDERE LIMITATĂ",
        },
        "inregistrare_scop_Tva": {
            "scpTVA": vat,
            "perioade_TVA": [
                {
                    "data_inceput_ScpTVA": "2012-11-01",
                    "data_sfarsit_ScpTVA": "",
                    "data_anul_imp_ScpTVA": "",
                    "mesaj_ScpTVA": "",
                }
            ]
            if vat
            else [],
        },
        "inregistrare_RTVAI": {
            "dataInceputTvaInc": "2020-01-01" if vat_on_collection else "",
            "dataSfarsitTvaInc": "",
            "dataActualizareTvaInc": "",
            "dataPublicareTvaInc": "",
            "tipActTvaInc": "",
            "statusTvaIncasare": vat_on_collection,
        },
        "stare_inactiv": {
            "dataInactivare": "2023-05-10" if inactive else "",
            "dataReactivare": "",
            "dataPublicare": "",
            "dataRadiere": "",
            "statusInactivi": inactive,
        },
        "inregistrare_SplitTVA": {
            "dataInceputSplitTVA": "2018-02-01" if split_vat else "",
            "dataAnulareSplitTVA": "",
            "statusSplitTVA": split_vat,
        },
        "adresa_sediu_social": {f"s{k}": v for k, v in address.items()},
        "adresa_domiciliu_fiscal": {f"d{k}": v for k, v in address.items()},
    }


def default_registry() -> dict[int, dict[str, Any]]:
    """Fake companies under CUIs that pass the check digit (notes/anaf.md §1.4 examples)."""
    return {
        c["date_generale"]["cui"]: c
        for c in [
            company(18547290, "EXEMPLU FACTURARE SRL", e_invoice=True),
            company(4264242, "INACTIV DEMO SRL", inactive=True, vat=False),
            company(27193515, "SPLIT TVA DEMO SA", "TM", split_vat=True, vat_on_collection=True),
            company(12345674, "NEPLATITOR TVA SRL", vat=False),
            company(with_check_digit(1000001), "A DOUA FIRMA SRL", e_invoice=True),
        ]
    }


@dataclass
class AnafSandboxState:
    client_id: str = CLIENT_ID
    # Made at run time for each sandbox: never a credential in the repository.
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    companies: dict[int, dict[str, Any]] = field(default_factory=default_registry)
    lookup_interval_s: float | None = 1.0
    lookup_slack_s: float = 0.02  # arrival jitter tolerated on loopback
    over_limit: Literal["429", "waf"] = "429"
    access_ttl_s: int = ACCESS_TTL_S
    codes: dict[str, tuple[str, float]] = field(default_factory=dict)
    access_tokens: dict[str, float] = field(default_factory=dict)
    refresh_tokens: set[str] = field(default_factory=set)
    spent_refresh_tokens: set[str] = field(default_factory=set)
    refreshes: int = 0
    token_requests: int = 0
    requests: int = 0
    lookups: list[LookupCall] = field(default_factory=list)
    failures: list[ScriptedFailure] = field(default_factory=list)
    efactura: EfacturaState = field(default_factory=EfacturaState)
    etransport: EtransportState = field(default_factory=EtransportState)
    last_lookup: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_failure(self, path: str) -> ScriptedFailure | None:
        with self.lock:
            self.requests += 1
            return pop_failure(self.failures, path)

    def bearer_ok(self, request: Request) -> bool:
        """A live access token in ``Authorization: Bearer``."""
        auth = request.headers.get("authorization", "")
        with self.lock:
            expires = self.access_tokens.get(auth.removeprefix("Bearer "))
        return auth.startswith("Bearer ") and expires is not None and expires >= time.time()

    def issue_code(self, redirect_uri: str) -> str:
        code = secrets.token_urlsafe(16)
        with self.lock:
            self.codes[code] = (redirect_uri, time.time())
        return code

    def issue_tokens(self) -> dict[str, Any]:
        """A new pair; the caller holds the lock."""
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.access_tokens[access] = time.time() + self.access_ttl_s
        self.refresh_tokens.add(refresh)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_ttl_s,
            "refresh_token": refresh,
        }


def _problem(status: int, message: str, path: str) -> JSONResponse:
    """Spring Boot's error body, which ANAF's APIs answer for a 400 (notes §2.3)."""
    return JSONResponse(
        {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "status": status,
            "error": "Bad Request" if status == 400 else "Error",
            "message": message,
            "path": path,
        },
        status_code=status,
    )


def _oauth_error(error: str, status: int = 400) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": f"sandbox: {error}"}, status_code=status
    )


def _waf_page() -> HTMLResponse:
    return HTMLResponse(WAF_PAGE.format(support_id=secrets.randbelow(10**19)), status_code=200)


async def _answer_failure(
    app: ASGIApp, failure: ScriptedFailure, scope: Scope, receive: Receive, send: Send
) -> None:
    """A scripted failure, answered before (or, ``act_first``, around) the app."""
    if failure.act_first:
        await app(scope, receive, _late(send, failure))
        return
    if failure.delay_s:
        await asyncio.sleep(failure.delay_s)
    if failure.drop:
        await drop_connection(send)
    if failure.waf:
        response: Response = _waf_page()
    elif failure.status is None:
        await app(scope, receive, send)
        return
    else:
        headers = (
            {"Retry-After": str(failure.retry_after_s)}
            if failure.retry_after_s is not None
            else None
        )
        response = _problem(failure.status, "sandbox: scripted failure", scope["path"])
        response.init_headers(headers)
        response.headers["content-length"] = str(len(response.body))
    await response(scope, receive, send)


def _late(send: Send, failure: ScriptedFailure) -> Send:
    """The app's answer, held back ``delay_s`` (the client gives up first) or dropped."""

    async def late_send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            await asyncio.sleep(failure.delay_s)
            if failure.drop:
                raise ConnectionAbortedError("sandbox: dropped connection after acting")
        await send(message)

    return late_send


def create_sandbox_app(state: AnafSandboxState | None = None) -> FastAPI:
    """The sandbox as an ASGI app; ``state`` is shared with the caller for inspection."""
    state = state or AnafSandboxState()
    app = FastAPI(title="ANAF sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state
    _oauth_routes(app, state)
    _lookup_routes(app, state)
    _control_routes(app, state)
    add_efactura_routes(app, state.efactura, state.bearer_ok)
    add_etransport_routes(app, state.etransport, state.bearer_ok)
    app.add_middleware(
        ScriptedFaults[ScriptedFailure], next_failure=state.next_failure, answer=_answer_failure
    )
    return app


def _oauth_routes(app: FastAPI, state: AnafSandboxState) -> None:
    @app.get("/anaf-oauth2/v1/authorize")
    async def authorize(
        response_type: str,
        client_id: str,
        redirect_uri: str,
        state_: str | None = Query(default=None, alias="state"),
    ) -> Response:
        if response_type != "code" or client_id != state.client_id:
            return _oauth_error("invalid_request")
        query = {"code": state.issue_code(redirect_uri)}
        if state_:
            query["state"] = state_
        return RedirectResponse(f"{redirect_uri}?{urlencode(query)}", status_code=302)

    @app.post(TOKEN_PATH)
    async def token(request: Request) -> Response:
        form = await request.form()
        expected = base64.b64encode(f"{state.client_id}:{state.client_secret}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return _oauth_error("invalid_client", 401)
        grant = form.get("grant_type")
        with state.lock:
            state.token_requests += 1
            if grant == "authorization_code":
                issued = state.codes.pop(str(form.get("code")), None)
                if (
                    issued is None
                    or issued[0] != form.get("redirect_uri")
                    or time.time() - issued[1] > CODE_TTL_S
                ):
                    return _oauth_error("invalid_grant")
            elif grant == "refresh_token":
                old = str(form.get("refresh_token"))
                if old not in state.refresh_tokens:
                    return _oauth_error("invalid_grant")
                state.refresh_tokens.discard(old)
                state.spent_refresh_tokens.add(old)
                state.refreshes += 1
            else:
                return _oauth_error("unsupported_grant_type")
            return JSONResponse(state.issue_tokens())

    @app.get("/TestOauth/jaxrs/hello")
    async def hello(request: Request, name: str = "") -> Response:
        if not state.bearer_ok(request):
            return JSONResponse({"status": 401, "error": "Unauthorized"}, status_code=401)
        return JSONResponse({"message": f"Hello {name}"})


def _lookup_routes(app: FastAPI, state: AnafSandboxState) -> None:
    @app.post(LOOKUP_PATH)
    async def lookup(request: Request) -> Response:
        now, client = time.monotonic(), request.client.host if request.client else "?"
        raw = await request.body()
        with state.lock:
            last = state.last_lookup.get(client)
            too_soon = (
                state.lookup_interval_s is not None
                and last is not None
                and now - last < state.lookup_interval_s - state.lookup_slack_s
            )
            if not too_soon:
                state.last_lookup[client] = now
        response, count = _answer_lookup(state, raw, too_soon)
        with state.lock:
            state.lookups.append(LookupCall(now, client, count, response.status_code))
        return response


def _answer_lookup(state: AnafSandboxState, raw: bytes, too_soon: bool) -> tuple[Response, int]:
    if b"<script" in raw.lower():
        return _waf_page(), 0
    if too_soon:
        if state.over_limit == "waf":
            return _waf_page(), 0
        return JSONResponse(
            {"message": "sandbox: maxim 1 request pe secunda"},
            status_code=429,
            headers={"Retry-After": "1"},
        ), 0
    try:
        body = json.loads(raw)
        asked = [(int(item["cui"]), date.fromisoformat(item["data"])) for item in body]
    except (ValueError, TypeError, KeyError):
        return _problem(
            400, 'sandbox: body must be [{"cui": n, "data": "YYYY-MM-DD"}]', LOOKUP_PATH
        ), 0
    if not asked or len(asked) > MAX_CUIS:
        return _problem(
            400, f"sandbox: between 1 and {MAX_CUIS} CUIs per request", LOOKUP_PATH
        ), len(asked)
    found, not_found = [], []
    for cui, on in asked:
        entry = state.companies.get(cui)
        if entry is None:
            not_found.append(cui)
            continue
        general = {**entry["date_generale"], "data": on.isoformat()}
        found.append({**entry, "date_generale": general})
    return JSONResponse({"found": found, "notFound": not_found}), len(asked)


def _control_routes(app: FastAPI, state: AnafSandboxState) -> None:
    @app.post("/_sandbox/fail_next")
    async def fail_next(request: Request) -> dict[str, bool]:
        body = await request.json()
        with state.lock:
            state.failures.extend(ScriptedFailure(**f) for f in body.get("failures", []))
        return {"ok": True}

    @app.get("/_sandbox/state")
    async def inspect() -> dict[str, Any]:
        with state.lock:
            return {
                "requests": state.requests,
                "refreshes": state.refreshes,
                "token_requests": state.token_requests,
                "lookups": [asdict(c) for c in state.lookups],
            }


class AnafSandbox(LoopbackServer):
    """``with AnafSandbox() as anaf:`` serves on loopback (uvicorn, background thread).

    Point settings at it: ``anaf_public_url=anaf.public_url``, ``anaf_api_url=anaf.api_url``,
    ``anaf_oauth_url=anaf.oauth_url``, ``anaf_client_id=anaf.client_id`` …
    """

    name = "ANAF"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        state: AnafSandboxState | None = None,
        log_level: str = "warning",
        schemas_dir: Path | None = None,
    ) -> None:
        self.state = state or AnafSandboxState()
        if schemas_dir is not None:  # e-Factura uploads judged by the real XSD + Schematron
            self.state.efactura.check = schema_check(schemas_dir)
            self.state.etransport.check = etransport_check(schemas_dir)
        self.app = create_sandbox_app(self.state)
        super().__init__(self.app, host, port, log_level)

    public_url = api_url = oauth_url = LoopbackServer.url

    @property
    def client_id(self) -> str:
        return self.state.client_id

    @property
    def client_secret(self) -> str:
        return self.state.client_secret

    @property
    def requests(self) -> int:
        """ANAF requests received (control endpoints excluded)."""
        with self.state.lock:
            return self.state.requests

    @property
    def lookups(self) -> list[LookupCall]:
        with self.state.lock:
            return list(self.state.lookups)

    @property
    def refreshes(self) -> int:
        with self.state.lock:
            return self.state.refreshes

    @property
    def efactura(self) -> EfacturaState:
        return self.state.efactura

    @property
    def signing_cert_pem(self) -> bytes:
        """The certificate that signs e-Factura downloads (a client pins it)."""
        return self.state.efactura.signer.cert_pem

    def fail_next(self, *failures: ScriptedFailure) -> None:
        with self.state.lock:
            self.state.failures.extend(failures)

    def issue_code(self, redirect_uri: str) -> str:
        """What the browser step (certificate login, consent) would hand the callback."""
        return self.state.issue_code(redirect_uri)


def main(argv: list[str] | None = None) -> None:
    """``python -m workers_core.sandbox.anaf [--port N]``: an ANAF stand-in for local runs."""
    args = address_args(main.__doc__, 8098, argv)
    # uploads judged by the real XSD + Schematron, as at ANAF
    schemas = schemas_or_none("every upload is accepted")
    sandbox = AnafSandbox(args.host, args.port, log_level="info", schemas_dir=schemas)
    serve_until_interrupted([
        *(f"WORKERS_ANAF_{name.upper()}_URL={sandbox.url}" for name in ("public", "api", "oauth")),
        f"WORKERS_ANAF_CLIENT_ID={sandbox.client_id}",
        f"WORKERS_ANAF_CLIENT_SECRET={sandbox.client_secret}",
        f"state: {sandbox.url}/_sandbox/state",
        f"e-Factura signing certificate: {sandbox.url}/_sandbox/efactura/signing-cert",
    ], sandbox.serve_forever)


if __name__ == "__main__":
    main()
