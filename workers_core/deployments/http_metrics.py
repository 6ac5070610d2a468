"""The gateway's own HTTP metrics (prometheus-client), served at ``GET /metrics``.

Requests are counted by route *template* (``/v1/jobs/{job_id}``), never by raw path, so
job ids cannot explode the label set. The registry belongs to one app (one gateway replica
per process), so several apps in one process (tests) do not share counters. Job and queue
metrics are not here: they go through ``ray.util.metrics`` (observability/metrics.py) and
Ray's metrics port.
"""

from __future__ import annotations

import time

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METRICS_PATH = "/metrics"
UNMATCHED_ROUTE = "<unmatched>"
# Submissions take ms; long-polls (GET /v1/jobs/{id}?wait=) up to a minute.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                     10.0, 30.0, 60.0)


class HttpMetrics:
    """The gateway's request metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "workers_http_requests", "HTTP requests answered, by route template and status.",
            ("method", "route", "status"), registry=self.registry)
        self.latency = Histogram(
            "workers_http_request_duration_seconds", "Time to answer, by route template.",
            ("method", "route"), buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.in_progress = Gauge(
            "workers_http_requests_in_progress", "Requests being answered now.",
            registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def route_template(scope: Scope) -> str:
    """The path template of the route the router matched (set in the scope by routing)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class HttpMetricsMiddleware:
    """Pure ASGI (no ``BaseHTTPMiddleware``): streamed bodies and long-polls pass untouched."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an exception before the response started is answered 500
        started = time.perf_counter()

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.in_progress.dec()
            method, route = scope["method"], route_template(scope)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)


def install_http_metrics(app: FastAPI) -> HttpMetrics:
    """Count every request of ``app`` and serve the counts at ``GET /metrics``.

    ``/metrics`` is an ordinary route, so the gateway's access policy applies to it (public
    by default, like the health checks).
    """
    metrics = HttpMetrics()
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)

    @app.get(METRICS_PATH, include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.state.http_metrics = metrics
    return metrics
