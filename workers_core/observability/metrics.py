"""Platform metrics through ``ray.util.metrics``: every definition is here, in one place.

Ray's metrics agent exports them to Prometheus as ``ray_<name>`` (counters also get
``_total``; histograms ``_bucket``/``_sum``/``_count``), with Ray's own labels added
(``WorkerId``, ``NodeAddress``, ``SessionName``…). Names start with ``workers_``: a name
that matches a Ray built-in is silently hidden by Ray.

Outside a Ray process (unit tests, the CLI) every recording call is a no-op; inside one
the metric objects are made on first use. A failing recording never fails a job.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from workers_core.jobs.models import QueueStats

log = structlog.get_logger("workers_core.metrics")

MetricKind = Literal["counter", "gauge", "histogram"]

# From a no-op echo (ms) to a long OCR or SAF-T job (30 min).
JOB_DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                          30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
# From an idle pool picking a job up at once to an hour of backlog.
QUEUE_WAIT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                        60.0, 300.0, 900.0, 3600.0)
# ANAF answers in 60-80 s at worst (see integrations/anaf/http.py); SMTP and Slack in ms.
EXTERNAL_CALL_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                           120.0)


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its name as recorded, its kind, labels and (histograms) buckets."""

    name: str
    kind: MetricKind
    description: str
    tag_keys: tuple[str, ...]
    boundaries: tuple[float, ...] = ()

    @property
    def exported_name(self) -> str:
        """The name Prometheus sees (histograms: the base of ``_bucket``/``_sum``/``_count``)."""
        return f"ray_{self.name}" + ("_total" if self.kind == "counter" else "")


JOBS_SUBMITTED = MetricSpec(
    "workers_jobs_submitted", "counter", "Jobs created (API, batch, chains).", ("task", "queue"))
JOBS_FINISHED = MetricSpec(
    "workers_jobs_finished", "counter",
    "Jobs that reached a final status: succeeded, failed, dead (dead-lettered), cancelled.",
    ("task", "queue", "status"))
JOBS_RETRIED = MetricSpec(
    "workers_jobs_retried", "counter", "Attempts that failed and were scheduled again.",
    ("task", "queue"))
JOB_DURATION = MetricSpec(
    "workers_job_duration_seconds", "histogram",
    "Run time of one attempt, by how it ended (succeeded, failed, dead, cancelled, retried).",
    ("task", "queue", "status"), JOB_DURATION_BUCKETS_S)
QUEUE_WAIT = MetricSpec(
    "workers_job_queue_wait_seconds", "histogram",
    "From entering the queue's stream (submit, due, retry due) to an attempt starting.",
    ("task", "queue"), QUEUE_WAIT_BUCKETS_S)
QUEUE_DEPTH = MetricSpec(
    "workers_queue_depth", "gauge", "Entries in the queue's stream not yet finished.", ("queue",))
QUEUE_PENDING = MetricSpec(
    "workers_queue_pending", "gauge", "Entries delivered to a replica, not yet finished.",
    ("queue",))
QUEUE_LAG = MetricSpec(
    "workers_queue_lag", "gauge", "Entries waiting, not yet delivered to any replica.", ("queue",))
QUEUE_OLDEST_WAIT = MetricSpec(
    "workers_queue_oldest_wait_seconds", "gauge", "Age of the oldest undelivered entry.",
    ("queue",))
QUEUE_DELAYED = MetricSpec(
    "workers_queue_delayed", "gauge", "Jobs scheduled for later or waiting for a retry.",
    ("queue",))
QUEUE_DEAD_LETTERS = MetricSpec(
    "workers_queue_dead_letters", "gauge", "Entries in the queue's dead-letter stream.",
    ("queue",))
EXTERNAL_CALL_DURATION = MetricSpec(
    "workers_external_call_seconds", "histogram",
    "Latency of calls to outside services (ANAF, SMTP, Slack), by outcome (ok, error).",
    ("integration", "operation", "outcome"), EXTERNAL_CALL_BUCKETS_S)
EXTERNAL_CALL_ERRORS = MetricSpec(
    "workers_external_call_errors", "counter",
    "Failed calls to outside services, by error type.", ("integration", "operation", "error"))

# Recorded by the registry actor (``record(WORKER_HEALTH_SCORE, score, tag=...)``); defined
# here so the names match the dashboard and the alert rules.
REGISTRY_WORKERS = MetricSpec(
    "workers_registry_workers", "gauge", "Registered workers by status.", ("status",))
WORKER_HEALTH_SCORE = MetricSpec(
    "workers_worker_health_score", "gauge", "Aggregate health score of a tag (0-100).", ("tag",))
HEARTBEAT_LATENCY = MetricSpec(
    "workers_heartbeat_latency_seconds", "gauge",
    "Heartbeat latency of the tag's workers (the worst one).", ("tag",))

METRICS = (JOBS_SUBMITTED, JOBS_FINISHED, JOBS_RETRIED, JOB_DURATION, QUEUE_WAIT, QUEUE_DEPTH,
           QUEUE_PENDING, QUEUE_LAG, QUEUE_OLDEST_WAIT, QUEUE_DELAYED, QUEUE_DEAD_LETTERS,
           EXTERNAL_CALL_DURATION, EXTERNAL_CALL_ERRORS, REGISTRY_WORKERS, WORKER_HEALTH_SCORE,
           HEARTBEAT_LATENCY)


def ray_running() -> bool:
    """True in a process connected to Ray (a driver, an actor, a Serve replica). Ray is never
    imported here: a process that has not imported it cannot be connected."""
    ray = sys.modules.get("ray")
    return ray is not None and bool(ray.is_initialized())


_made: dict[str, Any] = {}
_broken: set[str] = set()


def _metric(spec: MetricSpec) -> Any | None:
    """The process's Ray metric for ``spec``, made on first use; None outside Ray."""
    made = _made.get(spec.name)
    if made is not None or not ray_running():
        return made
    from ray.util import metrics as ray_metrics

    if spec.kind == "counter":
        made = ray_metrics.Counter(spec.name, spec.description, tag_keys=spec.tag_keys)
    elif spec.kind == "gauge":
        made = ray_metrics.Gauge(spec.name, spec.description, tag_keys=spec.tag_keys)
    else:
        made = ray_metrics.Histogram(spec.name, spec.description,
                                     boundaries=list(spec.boundaries), tag_keys=spec.tag_keys)
    _made[spec.name] = made
    return made


def record(spec: MetricSpec, value: float, **tags: str) -> None:
    """Add (counter), set (gauge) or observe (histogram) ``value``; a no-op outside Ray."""
    try:
        metric = _metric(spec)
        if metric is None:
            return
        if spec.kind == "counter":
            metric.inc(value, tags=tags)
        elif spec.kind == "gauge":
            metric.set(value, tags=tags)
        else:
            metric.observe(value, tags=tags)
    except Exception as exc:  # metrics must never fail the work they describe
        if spec.name not in _broken:
            _broken.add(spec.name)
            log.warning("metric_record_failed", metric=spec.name, error=str(exc),
                        error_type=type(exc).__name__)


# -- what the platform records ------------------------------------------------------------

def job_submitted(task: str, queue: str, count: int = 1) -> None:
    if count > 0:
        record(JOBS_SUBMITTED, count, task=task, queue=queue)


def job_started(task: str, queue: str, queue_wait_s: float) -> None:
    record(QUEUE_WAIT, max(queue_wait_s, 0.0), task=task, queue=queue)


def job_retried(task: str, queue: str, duration_s: float) -> None:
    record(JOBS_RETRIED, 1, task=task, queue=queue)
    record(JOB_DURATION, max(duration_s, 0.0), task=task, queue=queue, status="retried")


def job_finished(task: str, queue: str, status: str, duration_s: float) -> None:
    """A final status (succeeded, failed, dead, cancelled) and the last attempt's run time."""
    record(JOBS_FINISHED, 1, task=task, queue=queue, status=status)
    record(JOB_DURATION, max(duration_s, 0.0), task=task, queue=queue, status=status)


def queue_observed(stats: QueueStats) -> None:
    """The queue's gauges, from one ``JobStore.queue_stats`` reading."""
    q = stats.queue
    record(QUEUE_DEPTH, stats.length, queue=q)
    record(QUEUE_PENDING, stats.pending, queue=q)
    record(QUEUE_LAG, stats.lag, queue=q)
    record(QUEUE_OLDEST_WAIT, stats.oldest_waiting_s, queue=q)
    record(QUEUE_DELAYED, stats.delayed, queue=q)
    record(QUEUE_DEAD_LETTERS, stats.dead_lettered, queue=q)


# Path segments that are ids: all digits, or holding 3+ digits (RO12345678, an upload index);
# short ones such as ``v9`` stay.
_ID_SEGMENT = re.compile(r"/(?:\d+|[^/]*\d[^/]*\d[^/]*\d[^/]*)(?=/|$)")


def operation_of(method: str, path: str) -> str:
    """A low-cardinality label for an HTTP call: ``GET /stareMesaj/{id}`` (no ids, no query)."""
    bare = path.split("?", 1)[0]
    if "://" in bare:
        bare = "/" + bare.split("://", 1)[1].partition("/")[2]
    return f"{method.upper()} {_ID_SEGMENT.sub('/{id}', bare)}"


@contextmanager
def external_call(integration: str, operation: str) -> Iterator[None]:
    """Time a call to an outside service; an exception counts as an error of its type (the
    cause's, when it wraps a library error) and propagates unchanged."""
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:  # a cancelled call is no error of the service: not counted
        cause = exc.__cause__ or exc
        record(EXTERNAL_CALL_DURATION, time.perf_counter() - started,
               integration=integration, operation=operation, outcome="error")
        record(EXTERNAL_CALL_ERRORS, 1, integration=integration, operation=operation,
               error=type(cause).__name__)
        raise
    record(EXTERNAL_CALL_DURATION, time.perf_counter() - started,
           integration=integration, operation=operation, outcome="ok")
