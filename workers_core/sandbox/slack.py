"""A Slack sandbox: incoming webhooks and the Web API (``chat.postMessage``, ``auth.test``).

Protocol, as Slack documents it (docs.slack.dev "Sending messages using incoming webhooks",
"chat.postMessage", "auth.test", "Rate limits"):

- A webhook POST (JSON) answers ``200 ok`` as text, or an error word with a status:
  ``400 invalid_payload`` / ``no_text`` / ``invalid_blocks``, ``403 action_prohibited``,
  ``404 no_service`` (unknown or revoked hook), ``404 channel_not_found``,
  ``410 channel_is_archived``, ``500 rollup_error``.
- A Web API method answers HTTP 200 with JSON ``{"ok": true, ...}`` or
  ``{"ok": false, "error": "..."}``: ``not_authed`` without a token, ``invalid_auth`` with a
  wrong one, then ``channel_not_found``, ``is_archived``, ``no_text``, ``msg_too_long``,
  ``invalid_blocks``. Arguments come as JSON, form fields or the query string; channels may
  be named by ID or ``#name`` and the answer always gives the ID.
- A rate limit answers 429 with ``Retry-After`` (seconds).

Every accepted message is recorded. The answers to the next requests that would succeed can
be scripted (``fail_next``) to test retries, including a lost answer (``drop``: the message is
posted, the connection closes) and a slow one (``delay_s``). Control and inspection
endpoints live under ``/_sandbox/``.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


def throwaway_token() -> str:
    """A bot-token-shaped value made at run time for one sandbox; never a real credential."""
    return "xoxb-" + secrets.token_hex(16)


def throwaway_webhook_path() -> str:
    """A webhook path (``/services/T…/B…/<secret>``) made at run time for one sandbox."""
    return (
        f"/services/T{secrets.token_hex(4).upper()}/B{secrets.token_hex(4).upper()}/"
        f"{secrets.token_hex(12)}"
    )


WEBHOOK_CHANNEL = "C0FACTURI"
MAX_BLOCKS = 50  # Block Kit: at most 50 blocks per message
MAX_TEXT_CHARS = 40_000  # chat.postMessage: longer text is refused (msg_too_long)


@dataclass
class ScriptedFailure:
    """How the sandbox answers the next Slack request instead of handling it.

    ``status`` 429 answers with ``Retry-After``; 200 (API only) is ``{"ok": false}``; any
    other status carries ``error``. ``drop`` posts the message, then closes the connection
    without an answer; ``delay_s`` waits before answering (for client timeouts).
    """

    status: int = 429
    error: str = "ratelimited"
    retry_after_s: int = 1
    drop: bool = False
    delay_s: float = 0.0


@dataclass
class SlackSandboxState:
    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    failures: list[ScriptedFailure] = field(default_factory=list)
    channels: dict[str, str] = field(
        default_factory=lambda: {"C0FACTURI": "facturi", "C0OPS": "ops", "C0ARHIVA": "arhiva"}
    )
    archived: set[str] = field(default_factory=lambda: {"C0ARHIVA"})
    last_ts: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def channel_id(self, channel: str) -> str | None:
        """Slack accepts an ID or a ``#name``; answers always carry the ID."""
        if channel in self.channels:
            return channel
        name = channel.removeprefix("#")
        return next((cid for cid, n in self.channels.items() if n == name), None)

    def next_ts(self) -> str:
        """Message timestamps are unique per channel and increase: they identify messages."""
        with self.lock:
            self.last_ts = max(time.time(), self.last_ts + 0.000001)
            return f"{self.last_ts:.6f}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the state
        pass

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type",
            "text/plain; charset=utf-8"
            if isinstance(body, str)
            else "application/json; charset=utf-8",
        )
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    @property
    def _route(self) -> str:
        return urlsplit(self.path).path

    def do_GET(self) -> None:
        state = self.server.state
        if self._route == "/_sandbox/messages":
            with state.lock:
                self._reply(200, {"messages": state.messages, "requests": state.requests})
        elif self._route.startswith("/api/"):
            self._api(self._route.removeprefix("/api/"), self._arguments(b""))
        else:
            self._reply(404, "not found")

    def do_POST(self) -> None:
        raw = self._read()
        route = self._route
        if route.startswith("/_sandbox/"):
            self._control(route, json.loads(raw or b"{}"))
        elif route.startswith("/services/"):
            self._webhook(raw)
        elif route.startswith("/api/"):
            self._api(route.removeprefix("/api/"), self._arguments(raw))
        else:
            self._reply(404, "not found")

    def _control(self, route: str, body: dict[str, Any]) -> None:
        state = self.server.state
        with state.lock:
            if route == "/_sandbox/fail_next":
                state.failures.extend(ScriptedFailure(**f) for f in body.get("failures", []))
            elif route == "/_sandbox/reset":
                state.messages.clear()
                state.failures.clear()
                state.requests = 0
            else:
                self._reply(404, {"ok": False, "error": "unknown_control"})
                return
        self._reply(200, {"ok": True})

    def _count(self) -> None:
        with self.server.state.lock:
            self.server.state.requests += 1

    def _next_failure(self) -> ScriptedFailure | None:
        state = self.server.state
        with state.lock:
            return state.failures.pop(0) if state.failures else None

    def _arguments(self, raw: bytes) -> dict[str, Any] | None:
        """Web API arguments: query string, then a JSON or form body (form values are text,
        ``blocks`` JSON-encoded, as Slack accepts them). ``None``: the JSON is broken."""
        args: dict[str, Any] = dict(parse_qsl(urlsplit(self.path).query))
        if self.headers.get("Content-Type", "").startswith("application/json"):
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return None
            if not isinstance(body, dict):
                return None
            args.update(body)
        else:
            args.update(parse_qsl(raw.decode("utf-8", "replace")))
            if isinstance(args.get("blocks"), str):
                try:
                    args["blocks"] = json.loads(args["blocks"])
                except json.JSONDecodeError:
                    args["blocks"] = None
        return args

    # -- scripted failures ----------------------------------------------------------------

    def _fail(
        self, failure: ScriptedFailure, message: dict[str, Any] | None, webhook: bool
    ) -> None:
        if failure.delay_s:
            time.sleep(failure.delay_s)
        if failure.drop:
            if message is not None:  # it reached Slack; only the answer is lost
                self._record(message)
            self.close_connection = True
            return
        if failure.status == 429:
            self._reply(
                429,
                "rate_limited" if webhook else {"ok": False, "error": "ratelimited"},
                {"Retry-After": str(failure.retry_after_s)},
            )
        elif webhook:
            self._reply(failure.status, failure.error)
        else:
            self._reply(failure.status, {"ok": False, "error": failure.error})

    # -- incoming webhooks ------------------------------------------------------------------

    def _webhook(self, raw: bytes) -> None:
        self._count()
        if self._route != self.server.webhook_path:
            self._reply(404, "no_service")
            return
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            self._reply(400, "invalid_payload")
            return
        error = _content_error(body)
        if error:
            self._reply(400, error)
            return
        message = {
            "via": "webhook",
            "channel": WEBHOOK_CHANNEL,
            "ts": self.server.state.next_ts(),
            **body,
        }
        if failure := self._next_failure():
            self._fail(failure, message, webhook=True)
            return
        self._record(message)
        self._reply(200, "ok")

    # -- Web API ----------------------------------------------------------------------------

    def _api(self, method: str, args: dict[str, Any] | None) -> None:
        self._count()
        auth = self.headers.get("Authorization", "")
        form_token = (
            args.pop("token", "") if args is not None else ""
        )  # Slack also takes the token as an argument
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else form_token
        if not token:
            self._reply(200, {"ok": False, "error": "not_authed"})
        elif token != self.server.token:
            self._reply(200, {"ok": False, "error": "invalid_auth"})
        elif args is None:
            self._reply(200, {"ok": False, "error": "invalid_json"})
        elif method == "auth.test":
            self._answer(
                {
                    "ok": True,
                    "url": "https://sandbox.slack.com/",
                    "team": "Sandbox",
                    "user": "workers-bot",
                    "team_id": "T000SANDBOX",
                    "user_id": "U000BOT",
                    "bot_id": "B000SANDBOX",
                }
            )
        elif method == "chat.postMessage":
            self._post_message(args)
        else:
            self._reply(404, {"ok": False, "error": "unknown_method"})

    def _answer(self, body: dict[str, Any]) -> None:
        if failure := self._next_failure():
            self._fail(failure, None, webhook=False)
        else:
            self._reply(200, body)

    def _post_message(self, args: dict[str, Any]) -> None:
        state = self.server.state
        channel = state.channel_id(str(args.get("channel") or ""))
        if channel is None:
            error: str | None = "channel_not_found"
        elif channel in state.archived:
            error = "is_archived"
        else:
            error = _content_error(args)
        if error:
            self._reply(200, {"ok": False, "error": error})
            return
        ts = state.next_ts()
        message = {**args, "via": "api", "channel": channel, "ts": ts}
        if failure := self._next_failure():
            self._fail(failure, message, webhook=False)
            return
        self._record(message)
        shown = {k: v for k, v in message.items() if k in {"text", "blocks", "thread_ts"}}
        self._reply(
            200,
            {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "message": {
                    "type": "message",
                    "user": "U000BOT",
                    "bot_id": "B000SANDBOX",
                    "ts": ts,
                    **shown,
                },
            },
        )

    def _record(self, message: dict[str, Any]) -> None:
        with self.server.state.lock:
            self.server.state.messages.append(message)


def _content_error(body: dict[str, Any]) -> str | None:
    """The error word Slack gives for a message it cannot show (same for both routes)."""
    blocks = body.get("blocks")
    if blocks is not None and (
        not isinstance(blocks, list)
        or len(blocks) > MAX_BLOCKS
        or not all(isinstance(b, dict) and "type" in b for b in blocks)
    ):
        return "invalid_blocks"
    if not (body.get("text") or blocks):
        return "no_text"
    if len(str(body.get("text") or "")) > MAX_TEXT_CHARS:
        return "msg_too_long"
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], state: SlackSandboxState, token: str, webhook_path: str
    ) -> None:
        super().__init__(address, _Handler)
        self.state = state
        self.token = token
        self.webhook_path = webhook_path

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout tests) breaks the pipe: expected, not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class SlackSandbox:
    """``with SlackSandbox() as slack:`` serves on loopback in a background thread.

    Point the clients at it: ``slack_api_url=slack.api_url``, ``slack_bot_token=slack.token``,
    ``slack_webhook_url=slack.webhook_url``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> None:
        self.state = SlackSandboxState()
        self.token = token or throwaway_token()
        self.webhook_path = throwaway_webhook_path()
        self._server = _Server((host, port), self.state, self.token, self.webhook_path)
        # A short poll interval keeps stop() (per-test fixtures) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{self.webhook_path}"

    @property
    def messages(self) -> list[dict[str, Any]]:
        """A copy of the messages accepted so far, oldest first."""
        with self.state.lock:
            return [dict(m) for m in self.state.messages]

    @property
    def requests(self) -> int:
        """Slack requests received (webhook and API), control endpoints excluded."""
        with self.state.lock:
            return self.state.requests

    def fail_next(self, *failures: ScriptedFailure) -> None:
        with self.state.lock:
            self.state.failures.extend(failures)

    def start(self) -> SlackSandbox:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SlackSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        self._server.serve_forever()


def main() -> None:
    """``python -m workers_core.sandbox.slack [--port N]``: a Slack stand-in for local runs."""
    from workers_core.sandbox.server import (  # here: the sandbox itself needs only stdlib
        address_args,
        serve_until_interrupted,
    )

    args = address_args(main.__doc__, 8099, None)
    sandbox = SlackSandbox(args.host, args.port)
    serve_until_interrupted(
        [
            f"WORKERS_SLACK_API_URL={sandbox.api_url}",
            f"WORKERS_SLACK_BOT_TOKEN={sandbox.token}",
            f"WORKERS_SLACK_WEBHOOK_URL={sandbox.webhook_url}",
            f"messages: {sandbox.url}/_sandbox/messages",
        ],
        sandbox.serve_forever,
    )


if __name__ == "__main__":
    main()
