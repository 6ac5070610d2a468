"""A Slack sandbox: incoming webhooks and Web API ``chat.postMessage`` over real HTTP.

Protocol (api.slack.com): a webhook POST answers ``200 ok`` (text) or an error word such
as ``404 no_service``; ``chat.postMessage`` answers JSON ``{"ok": true, "channel", "ts",
"message"}`` or ``{"ok": false, "error": "..."}`` with HTTP 200; rate limits answer 429
with ``Retry-After`` (seconds). Every accepted message is recorded; the next answers can be
scripted (``fail_next``) to test retries. Control and inspection endpoints live under
``/_sandbox/``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VALID_TOKEN_PREFIX = "xoxb-"


@dataclass
class ScriptedFailure:
    status: int = 429
    error: str = "ratelimited"
    retry_after_s: int = 1


@dataclass
class SlackSandboxState:
    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    failures: list[ScriptedFailure] = field(default_factory=list)
    channels: set[str] = field(default_factory=lambda: {"C0FACTURI", "#facturi", "#ops"})
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the state
        pass

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str)
                         else "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            data = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}

    def do_GET(self) -> None:
        state = self.server.state
        if self.path == "/_sandbox/messages":
            with state.lock:
                self._reply(200, {"messages": state.messages, "requests": state.requests})
        else:
            self._reply(404, {"ok": False, "error": "unknown_method"})

    def do_POST(self) -> None:
        state = self.server.state
        body = self._body()
        if self.path == "/_sandbox/fail_next":
            with state.lock:
                state.failures.extend(ScriptedFailure(**f) for f in body.get("failures", []))
            self._reply(200, {"ok": True})
            return
        if self.path == "/_sandbox/reset":
            with state.lock:
                state.messages.clear()
                state.failures.clear()
                state.requests = 0
            self._reply(200, {"ok": True})
            return
        with state.lock:
            state.requests += 1
            failure = state.failures.pop(0) if state.failures else None
        if self.path.startswith("/services/"):
            self._webhook(body, failure)
        elif self.path == "/api/chat.postMessage":
            self._post_message(body, failure)
        else:
            self._reply(404, {"ok": False, "error": "unknown_method"})

    def _fail(self, failure: ScriptedFailure, webhook: bool) -> None:
        if failure.status == 429:
            self._reply(429, "rate_limited" if webhook else {"ok": False, "error": "ratelimited"},
                        {"Retry-After": str(failure.retry_after_s)})
        elif webhook or failure.status != 200:
            self._reply(failure.status, failure.error if webhook else
                        {"ok": False, "error": failure.error})
        else:
            self._reply(200, {"ok": False, "error": failure.error})

    def _webhook(self, body: dict[str, Any], failure: ScriptedFailure | None) -> None:
        if failure:
            self._fail(failure, webhook=True)
        elif not (body.get("text") or body.get("blocks")):
            self._reply(400, "no_text")
        else:
            self._record({"via": "webhook", "path": self.path, **body})
            self._reply(200, "ok")

    def _post_message(self, body: dict[str, Any], failure: ScriptedFailure | None) -> None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith(f"Bearer {VALID_TOKEN_PREFIX}"):
            self._reply(200, {"ok": False, "error": "invalid_auth"})
            return
        if failure:
            self._fail(failure, webhook=False)
            return
        channel = body.get("channel")
        if channel not in self.server.state.channels:
            self._reply(200, {"ok": False, "error": "channel_not_found"})
            return
        if not (body.get("text") or body.get("blocks")):
            self._reply(200, {"ok": False, "error": "no_text"})
            return
        ts = f"{time.time():.6f}"
        message = {"via": "api", "ts": ts, **body}
        self._record(message)
        self._reply(200, {"ok": True, "channel": channel, "ts": ts, "message": message})

    def _record(self, message: dict[str, Any]) -> None:
        with self.server.state.lock:
            self.server.state.messages.append(message)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: SlackSandboxState) -> None:
        super().__init__(address, _Handler)
        self.state = state


class SlackSandbox:
    """``with SlackSandbox() as slack:`` serves on loopback in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = SlackSandboxState()
        self._server = _Server((host, port), self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/services/T000SANDBOX/B000SANDBOX/sandboxsecret"

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
