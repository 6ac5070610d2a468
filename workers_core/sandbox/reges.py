"""A REGES-ONLINE sandbox over real HTTP (reges-ro/integrare README §7, notes/anaf.md §5).

- ``POST /realms/API/protocol/openid-connect/token`` (form): Keycloak's password grant for
  ``client_id=reges-api`` with the client secret and an API key (username/password); bad
  client credentials or a bad API key answer 401 ``unauthorized_client`` /
  ``invalid_grant`` as Keycloak does. Tokens live ``token_ttl_s``.
- ``POST /api/Contract`` and ``/api/Salariat`` (Bearer, XML): the ``MessageResponse`` with a
  new ``ResponseId`` (receipt). Unsafe or malformed XML, the wrong ``xsi:type`` for the
  endpoint and (when ``check`` is set) XSD errors answer 400 with ASP.NET-style problem
  details (our guess at REGES's body). NOT idempotent: every message is queued;
  ``received`` counts them per ``MessageId``.
- ``POST /api/Status/ReadMessage`` / ``CommitRead`` / ``PollMessage`` (``?consumerId=``): a
  FIFO of ``MessageResult`` with an independent cursor per consumer; a result is there
  ``processing_s`` after its message; 204 when none is. ``SUCCES`` with a new ``Ref``,
  or ``FAIL``/``ERROR`` for message ids in ``refuse``.

Fault injection: ``fail_next`` (status, ``Retry-After``, or ``act_first`` + ``drop``: the
message is queued and the answer lost). Inspection under ``/_sandbox/``.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from lxml import etree  # type: ignore[import-untyped]
from starlette.types import ASGIApp, Receive, Scope, Send

from workers_core.efactura.errors import MalformedXml, UnsafeXml
from workers_core.efactura.safe_xml import parse_untrusted
from workers_core.reges.document import NS, XSI
from workers_core.reges.validate import validate as validate_message
from workers_core.sandbox.server import (
    LoopbackServer,
    ScriptedFaults,
    address_args,
    drop_connection,
    pop_failure,
    schemas_or_none,
    serve_until_interrupted,
)

TOKEN_PATH = "/realms/API/protocol/openid-connect/token"
CLIENT_ID = "reges-api"
_KIND = {"/api/Contract": "Contract", "/api/Salariat": "Salariat"}
_XML = "application/xml"

Check = Callable[[bytes], list[str]]


def schema_check(schemas_root: Path) -> Check:
    """REGES's synchronous verdict with the project's validator (``reges.xsd``)."""

    def check(xml: bytes) -> list[str]:
        report = validate_message(xml, schemas_root)
        return [f"{issue.location}: {issue.text}" for issue in report.errors]

    return check


@dataclass
class ScriptedFailure:
    """The answer to the next request (to ``route``, a path prefix, if given).

    ``act_first``: the request IS handled, then the connection is dropped (``drop``) or
    the answer replaced by ``status``: REGES queued the message and the client never heard.
    """

    status: int = 503
    retry_after_s: int | None = None
    route: str | None = None
    act_first: bool = False
    drop: bool = False


@dataclass
class Queued:
    ready_at: float
    body: bytes


@dataclass
class RegesSandboxState:
    client_id: str = CLIENT_ID
    # Made at run time for each sandbox: never a credential in the repository.
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    username: str = field(default_factory=lambda: "api-" + secrets.token_hex(4))
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    token_ttl_s: float = 300.0  # Keycloak's default access token lifespan
    processing_s: float = 0.2
    check: Check | None = None
    refuse: dict[str, str] = field(default_factory=dict)  # MessageId -> FAIL description
    tokens: dict[str, float] = field(default_factory=dict)
    logins: int = 0
    received: Counter[str] = field(default_factory=Counter)  # per MessageId
    bad_requests: int = 0
    queue: list[Queued] = field(default_factory=list)
    cursors: dict[str, int] = field(default_factory=dict)
    failures: list[ScriptedFailure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_failure(self, path: str) -> ScriptedFailure | None:
        with self.lock:
            return pop_failure(self.failures, path)

    def bearer_ok(self, request: Request) -> bool:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        with self.lock:
            return self.tokens.get(token, 0.0) > time.time()


def _el(parent: Any, name: str, text: str | None = None) -> Any:
    node = etree.SubElement(parent, f"{{{NS}}}{name}")
    node.text = text
    return node


def _answer(root_name: str, header: Any, receipt: str, result: dict[str, str] | None) -> bytes:
    root = etree.Element(f"{{{NS}}}{root_name}", nsmap={None: NS, "xsi": XSI})
    root.append(header)
    _el(root, "ResponseId", receipt)
    if result is not None:
        node = _el(root, "Result")
        for name in ("Code", "CodeType", "Description", "Ref", "RelatedResultsExpected"):
            if name in result:
                _el(node, name, result[name])
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _problem(errors: list[str]) -> JSONResponse:
    return JSONResponse(
        {"type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
         "title": "One or more validation errors occurred.", "status": 400,
         "errors": {"Message": errors}},
        status_code=400, media_type="application/problem+json",
    )


def _oauth_error(error: str, description: str, status: int) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def create_sandbox_app(state: RegesSandboxState) -> FastAPI:
    app = FastAPI(title="REGES-ONLINE sandbox", docs_url=None, redoc_url=None)

    @app.post(TOKEN_PATH)
    async def token(request: Request) -> Response:
        return _login(state, dict(await request.form()))

    async def submit(request: Request) -> Response:
        if not state.bearer_ok(request):
            return Response(status_code=401)
        return await _submit(state, _KIND[request.url.path], await request.body())

    app.post("/api/Contract")(submit)
    app.post("/api/Salariat")(submit)

    def _next(consumer: str, commit: bool) -> Queued | None:
        with state.lock:
            at = state.cursors.get(consumer, 0)
            item = state.queue[at] if at < len(state.queue) else None
            if item is None or item.ready_at > time.time():
                return None
            if commit:
                state.cursors[consumer] = at + 1
            return item

    def _read(commit: bool) -> Callable[[Request], Awaitable[Response]]:
        async def read(request: Request) -> Response:
            if not state.bearer_ok(request):
                return Response(status_code=401)
            item = _next(request.query_params.get("consumerId", ""), commit)
            return Response(status_code=204) if item is None else Response(
                item.body, media_type=_XML)
        return read

    app.post("/api/Status/ReadMessage")(_read(commit=False))
    app.post("/api/Status/PollMessage")(_read(commit=True))

    @app.post("/api/Status/CommitRead")
    async def commit_read(request: Request) -> Response:
        if not state.bearer_ok(request):
            return Response(status_code=401)
        _next(request.query_params.get("consumerId", ""), commit=True)
        return Response(status_code=200)

    @app.get("/_sandbox/state")
    async def inspect() -> dict[str, Any]:
        with state.lock:
            return {"received": dict(state.received), "logins": state.logins,
                    "queued_results": len(state.queue), "cursors": dict(state.cursors)}

    return app


def _login(state: RegesSandboxState, form: dict[str, Any]) -> JSONResponse:
    """Keycloak's password grant, with its error words."""
    if form.get("grant_type") != "password":
        return _oauth_error("unsupported_grant_type", "Unsupported grant_type", 400)
    if (form.get("client_id"), form.get("client_secret")) != (
        state.client_id, state.client_secret
    ):
        return _oauth_error("unauthorized_client",
                            "Invalid client or Invalid client credentials", 401)
    if (form.get("username"), form.get("password")) != (state.username, state.password):
        return _oauth_error("invalid_grant", "Invalid user credentials", 401)
    access = secrets.token_urlsafe(32)
    with state.lock:
        state.tokens[access] = time.time() + state.token_ttl_s
        state.logins += 1
    return JSONResponse({"access_token": access, "expires_in": int(state.token_ttl_s),
                         "refresh_expires_in": 1800, "token_type": "Bearer",
                         "refresh_token": secrets.token_urlsafe(32), "scope": "profile"})


async def _submit(state: RegesSandboxState, kind: str, body: bytes) -> Response:
    """The synchronous checks (form, then schema); a receipt and a queued result."""
    try:
        root = parse_untrusted(body).getroot()
    except (MalformedXml, UnsafeXml) as exc:
        return _problem([exc.message])
    errors: list[str] = []
    xsi_type = (root.get(f"{{{XSI}}}type") or "").rpartition(":")[2]
    if root.tag != f"{{{NS}}}Message" or xsi_type != kind:
        errors.append(f'expected <Message xsi:type="{kind}"> in {NS}')
    elif state.check is not None:
        errors = await asyncio.to_thread(state.check, body)
    if errors:
        with state.lock:
            state.bad_requests += 1
        return _problem(errors)
    return Response(_queue(state, root), media_type=_XML)


def _queue(state: RegesSandboxState, root: Any) -> bytes:
    """Queue the message's result; its ``MessageResponse``."""
    header = root.find(f"{{{NS}}}Header")
    message_id = (header.findtext(f"{{{NS}}}MessageId") or "").strip()
    receipt = str(uuid.uuid4())
    refusal = state.refuse.get(message_id)
    result = (
        {"Code": "FAIL", "CodeType": "ERROR", "Description": refusal,
         "RelatedResultsExpected": "false"}
        if refusal is not None else
        {"Code": "SUCCES", "CodeType": "SUCCES", "Description": "sandbox: processed",
         "Ref": str(uuid.uuid4()), "RelatedResultsExpected": "false"}
    )
    copy = etree.fromstring(etree.tostring(header))
    with state.lock:
        state.received[message_id] += 1
        state.queue.append(Queued(time.time() + state.processing_s,
                                  _answer("MessageResult", copy, receipt, result)))
    return _answer("MessageResponse", header, receipt, None)


async def _answer_failure(
    app: ASGIApp, failure: ScriptedFailure, scope: Scope, receive: Receive, send: Send
) -> None:
    """A scripted failure in place of the app's answer (``act_first``: after the app acted)."""
    if failure.act_first:
        await app(scope, receive, _swallow)
    if failure.drop:
        await drop_connection(send)
    headers = {"Retry-After": str(failure.retry_after_s)} if failure.retry_after_s else None
    response = JSONResponse({"title": "sandbox: scripted failure", "status": failure.status},
                            status_code=failure.status, headers=headers)
    await response(scope, receive, send)


async def _swallow(message: MutableMapping[str, Any]) -> None:
    """The app's own answer, discarded."""


class RegesSandbox(LoopbackServer):
    """``with RegesSandbox() as reges:`` serves on loopback (uvicorn, background thread).

    Point settings at it: ``reges_api_url=reges.url``, ``reges_token_url=reges.token_url``,
    ``reges_client_secret=reges.client_secret``, ``reges_username``, ``reges_password``.
    """

    name = "REGES"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 state: RegesSandboxState | None = None, schemas_dir: Path | None = None,
                 log_level: str = "warning") -> None:
        self.state = state or RegesSandboxState()
        if schemas_dir is not None:
            self.state.check = schema_check(schemas_dir)
        self.app = ScriptedFaults(create_sandbox_app(self.state), self.state.next_failure,
                                  _answer_failure, exempt=("/_sandbox", TOKEN_PATH))
        super().__init__(self.app, host, port, log_level)

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def client_secret(self) -> str:
        return self.state.client_secret

    @property
    def username(self) -> str:
        return self.state.username

    @property
    def password(self) -> str:
        return self.state.password

    def received(self, message_id: object) -> int:
        """How many times a message with this ``MessageId`` arrived (and was queued)."""
        with self.state.lock:
            return self.state.received[str(message_id)]

    def refuse(self, message_id: object, description: str) -> None:
        """Answer this message's result with ``FAIL``/``ERROR`` and ``description``."""
        with self.state.lock:
            self.state.refuse[str(message_id)] = description

    def fail_next(self, *failures: ScriptedFailure) -> None:
        with self.state.lock:
            self.state.failures.extend(failures)


def main(argv: list[str] | None = None) -> None:
    """``python -m workers_core.sandbox.reges [--port N]``: a REGES stand-in for local runs."""
    args = address_args(main.__doc__, 8099, argv)
    # messages judged by the real reges.xsd, as at REGES
    schemas = schemas_or_none("every well-formed message is accepted")
    sandbox = RegesSandbox(args.host, args.port, schemas_dir=schemas, log_level="info")
    serve_until_interrupted([
        f"WORKERS_REGES_API_URL={sandbox.url}",
        f"WORKERS_REGES_TOKEN_URL={sandbox.token_url}",
        f"WORKERS_REGES_CLIENT_SECRET={sandbox.client_secret}",
        f"WORKERS_REGES_USERNAME={sandbox.username}",
        f"WORKERS_REGES_PASSWORD={sandbox.password}",
        f"state: {sandbox.url}/_sandbox/state",
    ], sandbox.serve_forever)


if __name__ == "__main__":
    main()
