"""What the HTTP sandboxes share: serving on loopback, scripted failures, the ``main()`` CLIs.

The ANAF and REGES sandboxes are ASGI apps under uvicorn in a daemon thread
(``LoopbackServer``); Slack's speaks through ``http.server`` and only shares the CLI helpers.
Each sandbox keeps its own ``ScriptedFailure``: their knobs and their answers differ.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Generic, NoReturn, Protocol, Self, TypeVar

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send


class LoopbackServer:
    """An ASGI app served by uvicorn in a daemon thread; the socket is bound at once, so
    ``url`` is known (port 0: a free one) before ``start()``."""

    name = "HTTP"  # in the start-up error

    def __init__(self, app: ASGIApp, host: str, port: int, log_level: str) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level=log_level,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:  # uvicorn offers no started event to wait on
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} sandbox did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def serve_forever(self) -> None:
        """Start, then serve until interrupted (Ctrl-C stops the server)."""
        self.start()
        try:
            self._thread.join()
        except KeyboardInterrupt:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Routed(Protocol):
    route: str | None  # a path prefix; None: any request


F = TypeVar("F", bound=Routed)


def pop_failure(failures: list[F], path: str) -> F | None:
    """Take the first failure scripted for ``path`` off the list; the caller holds the lock."""
    for i, failure in enumerate(failures):
        if failure.route is None or path.startswith(failure.route):
            return failures.pop(i)
    return None


class ScriptedFaults(Generic[F]):
    """ASGI middleware: a request that ``next_failure`` has a failure for is given to
    ``answer`` instead of the app; paths under ``exempt`` (control routes) never fail."""

    def __init__(
        self,
        app: ASGIApp,
        next_failure: Callable[[str], F | None],
        answer: Callable[[ASGIApp, F, Scope, Receive, Send], Awaitable[None]],
        exempt: tuple[str, ...] = ("/_sandbox",),
    ) -> None:
        self.app, self.next_failure, self.answer, self.exempt = app, next_failure, answer, exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        failure = None
        if scope["type"] == "http" and not scope["path"].startswith(self.exempt):
            failure = self.next_failure(scope["path"])
        if failure is None:
            await self.app(scope, receive, send)
        else:
            await self.answer(self.app, failure, scope, receive, send)


async def drop_connection(send: Send) -> NoReturn:
    """Headers that promise a body which never comes; uvicorn then closes the socket."""
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]}
    )
    raise ConnectionAbortedError("sandbox: dropped connection")


def address_args(description: str | None, port: int, argv: list[str] | None) -> argparse.Namespace:
    """``--host`` and ``--port``, the options every sandbox ``main()`` takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    return parser.parse_args(argv)


def schemas_or_none(without: str) -> Path | None:
    """The official schemas from the settings; ``None`` (saying ``without``: what the
    sandbox then accepts) when they are not installed."""
    from workers_core.config import Settings
    from workers_core.efactura.errors import SchemasUnavailable
    from workers_core.efactura.schemas import schemas_root

    try:
        return schemas_root(Settings())
    except SchemasUnavailable as exc:
        print(f"no schemas ({exc.message}): {without}", flush=True)
        return None


def serve_until_interrupted(lines: Iterable[str], serve_forever: Callable[[], None]) -> None:
    """Print the settings that point at the sandbox, then serve until Ctrl-C."""
    for line in lines:
        print(line, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        serve_forever()
