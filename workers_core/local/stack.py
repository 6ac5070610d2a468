"""`workers-core up` / `down`: a local Redis (AOF), a Ray head and the Serve application.

Idempotent: what already runs is reused, and only what ``up`` started is stopped by
``down`` (recorded in ``<data_dir>/stack.json``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx

from workers_core.config import Settings
from workers_core.errors import WorkersError
from workers_core.local.redis_server import RedisServer

APP_NAME = "workers"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class StackInfo:
    api_url: str
    docs_url: str
    dashboard_url: str
    redis_url: str


def _state_file(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "stack.json"


def _binary(name: str) -> str:
    """``ray`` / ``serve`` from this interpreter's environment first."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def _local_redis(settings: Settings) -> RedisServer | None:
    url = urlparse(settings.redis_url)
    if url.hostname not in LOCAL_HOSTS:
        return None
    return RedisServer(settings.data_dir.resolve() / "redis", url.port or 6379,
                       host=url.hostname or "127.0.0.1")


def _ray_address(settings: Settings) -> str:
    return f"127.0.0.1:{settings.ray_port}"


def _ray_running(settings: Settings) -> bool:
    result = subprocess.run(
        [_binary("ray"), "status", "--address", _ray_address(settings)],
        capture_output=True, timeout=60,
    )
    return result.returncode == 0


def _start_ray(settings: Settings) -> None:
    subprocess.run(
        [_binary("ray"), "start", "--head", "--disable-usage-stats",
         "--port", str(settings.ray_port),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(settings.dashboard_port)],
        check=True, capture_output=True, timeout=180,
    )


def _deploy(settings: Settings) -> None:
    import ray
    from ray import serve

    from workers_core.deployments.app import build_platform

    ray.init(address=_ray_address(settings), log_to_driver=False)
    try:
        serve.start(http_options={"host": settings.http_host, "port": settings.http_port})
        serve.run(build_platform(settings), name=APP_NAME, route_prefix="/", blocking=False)
    finally:
        ray.shutdown()


def _wait_ready(api_url: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(f"{api_url}/readyz", timeout=5)
            if resp.status_code == 200:
                return
            last = resp.text
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise WorkersError(f"the platform did not become ready at {api_url}: {last}")


def up(settings: Settings) -> StackInfo:
    """Start what is not running yet, deploy the app, wait until /readyz answers 200."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started: dict[str, bool] = {"redis": False, "ray": False}
    redis_server = _local_redis(settings)
    if redis_server is not None and not redis_server.running():
        redis_server.start(daemonize=True)
        started["redis"] = True
    if not _ray_running(settings):
        _start_ray(settings)
        started["ray"] = True
    state = _state_file(settings)
    state.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(state.read_text()) if state.exists() else {}
    state.write_text(json.dumps({k: v or previous.get(k, False) for k, v in started.items()}))
    _deploy(settings)
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::") else settings.http_host
    api_url = f"http://{host}:{settings.http_port}"
    _wait_ready(api_url)
    return StackInfo(
        api_url=api_url,
        docs_url=f"{api_url}/docs",
        dashboard_url=f"http://127.0.0.1:{settings.dashboard_port}",
        redis_url=settings.redis_url,
    )


def down(settings: Settings) -> None:
    """Remove the app; stop the Ray head and Redis if ``up`` started them."""
    state = _state_file(settings)
    started = json.loads(state.read_text()) if state.exists() else {}
    if _ray_running(settings):
        if started.get("ray"):
            # `ray stop` ends every Ray process of this user on the machine.
            subprocess.run([_binary("ray"), "stop", "--force"], capture_output=True, timeout=120)
        else:
            subprocess.run([_binary("serve"), "shutdown", "-y", "--address",
                            f"http://127.0.0.1:{settings.dashboard_port}"],
                           capture_output=True, timeout=120)
    redis_server = _local_redis(settings)
    if started.get("redis") and redis_server is not None:
        redis_server.stop()
    state.unlink(missing_ok=True)


def info_json(info: StackInfo) -> str:
    return json.dumps(asdict(info), indent=2)
