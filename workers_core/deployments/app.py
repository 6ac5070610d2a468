"""The Serve application: the gateway bound to one pool deployment per queue.

``serve run workers_core.deployments.app:build_app``, ``workers-core up`` and KubeRay's
``serveConfigV2`` (``import_path: workers_core.deployments.app:build_app``) all start the
whole platform from this one builder. ``args`` are Settings fields (secrets stay in the
environment of the Ray nodes, read there by ``Settings``).
"""

from __future__ import annotations

import re
from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.config import BackpressureConfig

from workers_core.actors.pool import QueuePool
from workers_core.actors.scaling import replica_count_options
from workers_core.config import Settings, SettingsArgs
from workers_core.deployments.gateway import Gateway
from workers_core.tasks.registry import QueueSpec, TaskCatalog

GATEWAY_DEPLOYMENT = "Gateway"


def pool_deployment_name(queue: str) -> str:
    """``pdf.render`` -> ``Pool_pdf_render`` (Serve names: letters, digits, underscores)."""
    return "Pool_" + re.sub(r"[^A-Za-z0-9]+", "_", queue)


def pool_actor_options(spec: QueueSpec) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": spec.resources.num_cpus}
    if spec.resources.num_gpus:
        options["num_gpus"] = spec.resources.num_gpus
    if spec.resources.memory_mb:
        options["memory"] = spec.resources.memory_mb * 1024 * 1024
    return options


def build_platform(settings: Settings, bind: Settings | SettingsArgs | None = None
                   ) -> Application:
    """The whole platform for ``settings``. Replicas get ``bind`` (default: ``settings``);
    ``build_app`` passes the config's plain ``args`` so that no secret is bound."""
    bound = settings if bind is None else bind
    catalog = TaskCatalog.discover()
    queues = catalog.queues() if settings.enabled_queues is None else settings.enabled_queues
    pools = {}
    for queue in queues:
        spec = catalog.queue_spec(queue, settings)
        deployment = serve.deployment(
            name=pool_deployment_name(queue),
            **replica_count_options(spec),  # fixed `replicas`, or backlog autoscaling
            ray_actor_options=pool_actor_options(spec),
            max_ongoing_requests=16,  # only pings and stats: work comes from the stream
            # Longer than the consumer's own grace period, so in-flight jobs finish first.
            graceful_shutdown_timeout_s=settings.shutdown_grace_s + 10,
            health_check_period_s=10,
        )(QueuePool)
        pools[queue] = deployment.bind(bound, queue)
    gateway = serve.deployment(
        name=GATEWAY_DEPLOYMENT,
        num_replicas=settings.gateway_replicas,
        ray_actor_options={"num_cpus": settings.gateway_num_cpus},
        max_ongoing_requests=settings.gateway_max_ongoing_requests,
        max_queued_requests=settings.gateway_max_queued_requests,
        # Overload answers 429 with Retry-After instead of growing a queue without bound.
        backpressure_config=BackpressureConfig(
            status_code=429, retry_after_s=settings.backpressure_retry_after_s
        ),
    )(Gateway)
    return gateway.bind(bound, pools)


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Serve application builder (``import_path``); ``args`` override Settings fields."""
    return build_platform(Settings(**(args or {})), bind=dict(args or {}))
