"""Real HTTP servers on 127.0.0.1 for tests: one a guarded fetch must never reach, and a
webhook receiver. Shared by unit and integration tests (the fixtures are in tests/conftest.py).
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler],
            ) -> Iterator[http.server.ThreadingHTTPServer]:
    """``handler`` served on a free loopback port in a daemon thread until the block ends."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class Recorder(http.server.BaseHTTPRequestHandler):
    """A server a guarded fetch or render must never reach: it records whatever arrives."""

    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.end_headers()
        self.wfile.write(b"<p>LOOPBACK-SECRET</p>")

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Receiver:
    """An HTTP receiver on loopback: answers ``fail_status`` to the first ``fail_first``
    POSTs (all of them with ``fail_first=-1``), then 204; records what it got."""

    fail_first: int = 0
    fail_status: int = 500
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    calls: int = 0
    url: str = ""

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.calls += 1
                failing = receiver.fail_first < 0 or receiver.calls <= receiver.fail_first
                if not failing:
                    receiver.received.append((dict(self.headers.items()), body))
                self.send_response(receiver.fail_status if failing else 204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]
