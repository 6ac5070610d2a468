"""Real-server fixtures: one redis-server for the session, a fresh key prefix per test."""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from tests.loopback import Receiver, Recorder, serving
from workers_core.clock import ManualClock
from workers_core.config import Settings
from workers_core.efactura.errors import SchemasUnavailable
from workers_core.efactura.schemas import schemas_root
from workers_core.jobs.store import JobStore
from workers_core.local.redis_server import RedisServer
from workers_core.sandbox.slack import SlackSandbox


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), free_port())
    server.start()
    yield server
    server.stop()


SAFT_XSD = "anaf/saft/Ro_SAFT_Schema_v248_20231121.xsd"


def schemas_or_skip(*needed: str) -> Path:
    """The schemas directory (holding each ``needed`` file), or a skip saying how to get it."""
    try:
        root = schemas_root(Settings(_env_file=None))  # type: ignore[call-arg]
        for name in needed:
            (root / name).stat()
    except (SchemasUnavailable, FileNotFoundError) as exc:
        pytest.skip(f"schemas absent (set WORKERS_SCHEMAS_DIR, ../shared/schemas): {exc}")
    return root


@pytest.fixture(scope="session")
def schemas() -> Path:
    return schemas_or_skip()


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=redis_server.url,
        redis_prefix=f"t{uuid.uuid4().hex[:10]}",
        visibility_timeout_s=2.0,
        read_block_ms=100,
    )


@pytest.fixture
def clock() -> ManualClock:
    import time

    return ManualClock(start=time.time())


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[JobStore]:
    s = JobStore.from_settings(settings)
    yield s
    await s.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


class SmtpCapture:
    """aiosmtpd handler: records envelopes; recipients named defer@/reject@ get 451/550."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("defer"):
            return "451 4.3.0 mailbox busy, try again later"
        if address.startswith("reject"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    username: str
    password: str
    capture: SmtpCapture


@pytest.fixture
def loopback_server() -> Iterator[tuple[int, list[str]]]:
    """A loopback server no guarded request may reach: (its port, the paths it was asked for)."""
    hits: list[str] = []
    with serving(type("Handler", (Recorder,), {"hits": hits})) as server:
        yield server.server_address[1], hits


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback, its ``url`` set."""
    rec = Receiver()
    with serving(rec.handler()) as server:
        rec.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/workers"
        yield rec


@pytest.fixture(scope="session")
def slack_sandbox() -> Iterator[SlackSandbox]:
    """The project's Slack stand-in (webhook + Web API over real HTTP) for the session."""
    with SlackSandbox() as slack:
        yield slack


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    password = secrets.token_urlsafe(16)  # a throwaway, made for this test session

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login, auth_data.password) == (b"robot", password.encode())
        # handled=False makes the server answer 535 (handled=True would leave it silent).
        return AuthResult(success=ok, handled=False)

    capture = SmtpCapture()
    port = free_port()  # aiosmtpd 1.4 cannot bind port 0
    controller = Controller(capture, hostname="127.0.0.1", port=port,
                            authenticator=authenticate, auth_require_tls=False)
    controller.start()
    yield SmtpServer("127.0.0.1", port, "robot", password, capture)
    controller.stop()
