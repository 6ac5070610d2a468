"""REGES-ONLINE API client (reges-ro/integrare README §7, notes/anaf.md §5).

- Token: Keycloak OpenID **password grant** (``client_id=reges-api``, client secret, the
  employer register's API key as username/password), kept until 30 s before ``expires_in``;
  a 401 from the API drops it and logs in once more (REGES answers 401 before acting).
- Submit: ``POST /api/Contract`` or ``/api/Salariat`` with the XML message; the synchronous
  ``MessageResponse`` carries ``ResponseId``, the receipt. A schema failure is HTTP 400.
- Results: a FIFO queue per employer. ``ReadMessage`` returns the next unread result without
  moving on, ``CommitRead`` moves on, ``PollMessage`` does both (a crash between it and
  storing the result would lose it, so the worker uses read + store + commit). An empty
  queue answers 204. ``consumerId`` gives an independent cursor.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Literal
from uuid import UUID

import httpx
from pydantic import BaseModel

from workers_core.config import Settings
from workers_core.efactura.errors import MalformedXml, UnsafeXml
from workers_core.efactura.safe_xml import parse_untrusted
from workers_core.errors import OutcomeUnknown
from workers_core.httputil import NOT_SENT, retry_after_s
from workers_core.reges.document import NS
from workers_core.reges.errors import (
    RegesLoginRefused,
    RegesNotConfigured,
    RegesRateLimited,
    RegesRejected,
    RegesUnauthorized,
    RegesUnavailable,
)

ENDPOINTS = {"employee": "/api/Salariat", "contract": "/api/Contract"}
TOKEN_MARGIN_S = 30.0
HEALTH_TIMEOUT_S = 5.0
_XML = "application/xml"
_MAX_TEXT = 500


class Receipt(BaseModel):
    """The synchronous ``MessageResponse``: REGES queued the message."""

    receipt_id: UUID
    message_id: UUID | None


class MessageResult(BaseModel):
    """One asynchronous ``MessageResult`` from the queue."""

    receipt_id: UUID
    message_id: UUID | None
    operation: str | None
    code: Literal["SUCCES", "FAIL"]
    code_type: Literal["SUCCES", "WARNING", "ERROR"]
    description: str | None
    ref: UUID | None
    sec_ref: UUID | None
    related_results_expected: bool


def _text(node: Any, path: str) -> str | None:
    value = node.findtext("/".join(f"{{{NS}}}{p}" for p in path.split("/")))
    return value.strip() if value is not None and value.strip() else None


def _uuid(value: str | None) -> UUID | None:
    return UUID(value) if value else None


def _parse(body: bytes, what: str) -> Any:
    try:
        return parse_untrusted(body).getroot()
    except (MalformedXml, UnsafeXml) as exc:
        raise RegesRejected(f"REGES {what}: an answer that is not XML ({exc.message})") from exc


def parse_receipt(body: bytes) -> Receipt:
    root = _parse(body, "MessageResponse")
    receipt = _text(root, "ResponseId")
    if receipt is None:
        raise RegesRejected("REGES answered without a ResponseId (no receipt)")
    return Receipt(receipt_id=UUID(receipt), message_id=_uuid(_text(root, "Header/MessageId")))


def parse_result(body: bytes) -> MessageResult:
    root = _parse(body, "MessageResult")
    try:
        return MessageResult(
            receipt_id=UUID(_text(root, "ResponseId") or ""),
            message_id=_uuid(_text(root, "Header/MessageId")),
            operation=_text(root, "Header/Operation"),
            code=_text(root, "Result/Code"),
            code_type=_text(root, "Result/CodeType"),
            description=_text(root, "Result/Description"),
            ref=_uuid(_text(root, "Result/Ref")),
            sec_ref=_uuid(_text(root, "Result/SecRef")),
            related_results_expected=_text(root, "Result/RelatedResultsExpected") == "true",
        )
    except ValueError as exc:
        raise RegesRejected(f"REGES sent a MessageResult this client cannot read: {exc}") from exc


def error_details(response: httpx.Response) -> list[str]:
    """REGES's messages from an error body (ASP.NET problem details or plain text)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = response.text.strip()
        return [text[:_MAX_TEXT]] if text else []
    if not isinstance(body, dict):
        return [str(body)[:_MAX_TEXT]]
    details: list[str] = []
    errors = body.get("errors")
    if isinstance(errors, dict):
        for field, messages in errors.items():
            items = messages if isinstance(messages, list) else [messages]
            details += [f"{field}: {m}"[:_MAX_TEXT] for m in items]
    elif isinstance(errors, list):
        details += [str(m)[:_MAX_TEXT] for m in errors]
    for key in ("detail", "title", "message", "error_description", "error"):
        if not details and isinstance(body.get(key), str):
            details.append(body[key][:_MAX_TEXT])
    return details


class RegesClient:
    """``await client.submit("contract", xml)``, ``read_result()``, ``commit_read()``."""

    def __init__(
        self,
        api_url: str,
        token_url: str,
        *,
        client_id: str,
        client_secret: str | None,
        username: str | None,
        password: str | None,
        timeout_s: float,
        consumer_id: str | None = None,
    ) -> None:
        self.token_url = token_url
        self._login_form = {"grant_type": "password", "client_id": client_id,
                            "client_secret": client_secret or "",
                            "username": username or "", "password": password or ""}
        self._configured = bool(client_secret and username and password)
        self._params = {"consumerId": consumer_id} if consumer_id else {}
        self._token: tuple[str, float] | None = None
        self._token_lock = asyncio.Lock()
        self.logins = 0
        self.http = httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            headers={"User-Agent": "workers-core"},
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RegesClient:
        def secret(value: Any) -> str | None:
            return value.get_secret_value() if value is not None else None

        return cls(
            settings.reges_api_url,
            settings.reges_token_url,
            client_id=settings.reges_client_id,
            client_secret=secret(settings.reges_client_secret),
            username=secret(settings.reges_username),
            password=secret(settings.reges_password),
            timeout_s=settings.reges_timeout_s,
            consumer_id=settings.reges_consumer_id,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- token -------------------------------------------------------------------------

    async def access_token(self, *, fresh: bool = False) -> str:
        """A live token: the cached one, or a new password-grant login."""
        async with self._token_lock:
            if not fresh and self._token is not None and self._token[1] > time.monotonic():
                return self._token[0]
            self._token = await self._login()
            return self._token[0]

    async def _login(self) -> tuple[str, float]:
        if not self._configured:
            raise RegesNotConfigured(
                "set WORKERS_REGES_CLIENT_SECRET, WORKERS_REGES_USERNAME and "
                "WORKERS_REGES_PASSWORD (the register's API key) before calling REGES"
            )
        try:
            response = await self.http.post(self.token_url, data=self._login_form)
        except httpx.TransportError as exc:
            raise RegesUnavailable(f"cannot reach REGES's token endpoint: {type(exc).__name__}"
                                   ) from exc
        if response.status_code >= 500:
            raise RegesUnavailable(f"REGES token endpoint: HTTP {response.status_code}",
                                   after_s=retry_after_s(response.headers))
        body = _json_object(response)
        if response.status_code != 200 or not isinstance(body.get("access_token"), str):
            error = str(body.get("error") or f"HTTP {response.status_code}")
            why = body.get("error_description") or error
            raise RegesLoginRefused(f"REGES login refused: {why}", error=error,
                                    status=response.status_code)
        self.logins += 1
        lifetime = float(body.get("expires_in") or 60)
        return body["access_token"], time.monotonic() + max(lifetime - TOKEN_MARGIN_S, 0.0)

    async def token_endpoint_answers(self) -> bool:
        """Health: the token endpoint answers at all (no credentials spent), within 5 s."""
        try:
            response = await self.http.post(self.token_url, data={"grant_type": "password"},
                                             timeout=HEALTH_TIMEOUT_S)
        except httpx.HTTPError:
            return False
        return response.status_code < 500

    # --- API ---------------------------------------------------------------------------

    async def _call(self, path: str, *, submit: bool = False, **kwargs: Any) -> httpx.Response:
        """POST with the Bearer token; one fresh login after a 401."""
        token = await self.access_token()
        response = await self._post(path, token, submit, kwargs)
        if response.status_code == 401:
            response = await self._post(path, await self.access_token(fresh=True), submit, kwargs)
        return self._check(response, path, submit)

    async def _post(self, path: str, token: str, submit: bool,
                    kwargs: dict[str, Any]) -> httpx.Response:
        extra = {key: value for key, value in kwargs.items() if key != "headers"}
        headers = {"Authorization": f"Bearer {token}", "Accept": _XML,
                   **kwargs.get("headers", {})}
        try:
            return await self.http.post(path, headers=headers, **extra)
        except NOT_SENT as exc:
            raise RegesUnavailable(f"cannot reach REGES {path}: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            what = f"no answer from REGES {path}: {type(exc).__name__}"
            if submit:
                raise OutcomeUnknown(what + "; REGES may have queued the message") from exc
            raise RegesUnavailable(what) from exc

    @staticmethod
    def _check(response: httpx.Response, path: str, submit: bool) -> httpx.Response:
        status = response.status_code
        where = f"REGES {path}: HTTP {status}"
        if status < 300:
            return response
        details = error_details(response)
        shown = f"{where}: {'; '.join(details[:10])}" if details else where
        if status == 429:
            raise RegesRateLimited(shown, after_s=retry_after_s(response.headers))
        if submit and status in (500, 502, 504):  # it may have been queued before failing
            raise OutcomeUnknown(shown + "; REGES may have queued the message")
        if status >= 500:
            raise RegesUnavailable(shown, after_s=retry_after_s(response.headers))
        if status in (401, 403):
            raise RegesUnauthorized(shown, status=status, details=details)
        raise RegesRejected(shown, status=status, details=details)

    async def submit(self, kind: str, xml: bytes) -> Receipt:
        """Send one message (``kind`` employee|contract); its receipt. Not idempotent."""
        response = await self._call(ENDPOINTS[kind], submit=True, content=xml,
                                    headers={"Content-Type": _XML})
        return parse_receipt(response.content)

    async def read_result(self) -> MessageResult | None:
        """``ReadMessage``: the next unread result, or None when the queue is empty."""
        response = await self._call("/api/Status/ReadMessage", params=self._params)
        if response.status_code == 204 or not response.content.strip():
            return None
        return parse_result(response.content)

    async def commit_read(self) -> None:
        """``CommitRead``: move past the result ``read_result`` returned."""
        await self._call("/api/Status/CommitRead", params=self._params)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}
