"""A local redis-server process with AOF persistence in a data directory (dev and tests)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from workers_core.errors import WorkersError


class RedisServer:
    """Start, stop and restart one redis-server on loopback, its data under ``data_dir``."""

    def __init__(
        self, data_dir: Path, port: int, host: str = "127.0.0.1", appendfsync: str = "always"
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.host = host
        self.appendfsync = appendfsync
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "redis.pid"

    def _config(self, daemonize: bool) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "redis.conf"
        # appendfsync always: a job acknowledged with 202 is on disk, not only in memory.
        conf.write_text(
            "\n".join([
                f"bind {self.host}",
                f"port {self.port}",
                f"dir {self.data_dir}",
                "appendonly yes",
                f"appendfsync {self.appendfsync}",
                "save ''",
                "protected-mode yes",
                f"daemonize {'yes' if daemonize else 'no'}",
                f"pidfile {self.pidfile}",
                f"logfile {self.data_dir / 'redis.log'}",
                "",
            ])
        )
        return conf

    def start(self, daemonize: bool = False, timeout_s: float = 20.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise WorkersError("redis-server is not installed (apt-get install redis-server)")
        conf = self._config(daemonize)
        if daemonize:
            subprocess.run([binary, str(conf)], check=True)
        else:
            self._proc = subprocess.Popen([binary, str(conf)])
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    raise WorkersError(f"redis-server on port {self.port} did not start; see "
                                       f"{self.data_dir / 'redis.log'}")
                time.sleep(0.05)
        finally:
            client.close()

    def running(self) -> bool:
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM: Redis fsyncs the AOF and exits."""
        pid = self._pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None:
                if self._proc.poll() is not None:
                    break
            else:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
            time.sleep(0.05)
        self._proc = None

    def _pid(self) -> int | None:
        if self._proc is not None:
            return self._proc.pid
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def restart(self) -> None:
        daemonized = self._proc is None
        self.stop()
        self.start(daemonize=daemonized)
