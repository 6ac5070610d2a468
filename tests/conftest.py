"""Real-server fixtures: one redis-server for the session, a fresh key prefix per test."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from workers_core.clock import ManualClock
from workers_core.config import Settings
from workers_core.jobs.store import JobStore
from workers_core.local.redis_server import RedisServer


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
