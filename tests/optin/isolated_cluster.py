"""An autoscaling Ray cluster on one machine that starts and stops only its own processes.

Ray's ``AutoscalingCluster`` runs ``ray stop --force`` (every Ray process on the machine,
other test runs included), listens on the fixed port 6379, and reads a fake-provider
``example.yaml`` that the 2.60.0 wheel does not ship. This subclass embeds that file, gives
the head its own ports and temp directory, and on shutdown ends only the processes whose
command line names that directory (its raylets, GCS, monitor and workers).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil
import ray
from ray.cluster_utils import AutoscalingCluster

from tests.conftest import free_port

# ray-project/ray python/ray/autoscaler/_private/fake_multi_node/example.yaml (commit
# 0f9191efb6911c7c992b994489ce27138b4567c9), less its node types; also in
# ../shared/ray/fake_multinode_example.yaml.
FAKE_MULTINODE_BASE: dict[str, Any] = {
    "cluster_name": "fake_multinode",
    "max_workers": 8,
    "provider": {"type": "fake_multinode", "use_node_id_as_ip": True,
                 "disable_node_updaters": True, "disable_launch_config_check": True},
    "head_node_type": "ray.head.default",
    "auth": {},
    "upscaling_speed": 1.0,
    "idle_timeout_minutes": 0.1,
    "docker": {},
    "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
    "worker_setup_commands": [], "head_start_ray_commands": [],
    "worker_start_ray_commands": [], "file_mounts": {}, "cluster_synced_files": [],
    "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
}


class IsolatedAutoscalingCluster(AutoscalingCluster):  # type: ignore[misc]
    """``AutoscalingCluster`` (autoscaler v1, fake provider) without ``ray stop --force``."""

    def __init__(self, head_resources: dict[str, Any], worker_node_types: dict[str, Any],
                 **config_kwargs: Any) -> None:
        self.port = free_port()
        # Short: Ray's socket paths under the temp dir must stay below ~107 characters.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="wcas-", dir="/tmp"))
        super().__init__(head_resources, worker_node_types, **config_kwargs)

    @property
    def address(self) -> str:
        # As upstream: the head (and the fake provider's nodes) on the machine's address.
        return f"{ray._private.services.get_node_ip_address()}:{self.port}"

    def _generate_config(self, head_resources: dict[str, Any],
                         worker_node_types: dict[str, Any], autoscaler_v2: bool = False,
                         **config_kwargs: Any) -> dict[str, Any]:
        config = copy.deepcopy(FAKE_MULTINODE_BASE)
        config["available_node_types"] = {
            **copy.deepcopy(worker_node_types),
            "ray.head.default": {"resources": dict(head_resources), "node_config": {},
                                 "max_workers": 0},
        }
        # The fake provider starts worker nodes against this GCS (default: port 6379).
        config["provider"]["gcs_address"] = self.address
        config.update(config_kwargs)
        return config

    def start(self, _system_config: dict[str, Any] | None = None,
              override_env: dict[str, str] | None = None) -> None:
        config_file = self.temp_dir / "cluster.json"
        config_file.write_text(json.dumps(self._config))
        head = dict(self._head_resources)
        cmd = [
            str(Path(sys.executable).parent / "ray"), "start", "--head",
            f"--port={self.port}",
            f"--temp-dir={self.temp_dir}", f"--autoscaling-config={config_file}",
            "--include-dashboard=false", "--disable-usage-stats",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--num-cpus={head.pop('CPU', 0)}", f"--num-gpus={head.pop('GPU', 0)}",
        ]
        if "object_store_memory" in head:
            cmd.append(f"--object-store-memory={head.pop('object_store_memory')}")
        if head:
            cmd.append(f"--resources={json.dumps(head)}")
        env = {"RAY_raylet_start_wait_time_s": "300", **os.environ,
               "AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_FAKE_CLUSTER": "1",
               **(override_env or {})}
        subprocess.run(cmd, env=env, check=True)
        ray._private.services.find_gcs_addresses.cache_clear()

    def own_processes(self) -> list[psutil.Process]:
        mine = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if str(self.temp_dir) in cmdline and proc.pid != os.getpid():
                mine.append(proc)
        return mine

    def shutdown(self) -> None:
        """End this cluster's processes only (by pid), then remove its directory."""
        procs = self.own_processes()
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=10)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        ray._private.services.find_gcs_addresses.cache_clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
