"""`workers-core validate`: is a running deployment whole, end to end, over its HTTP API?

Each check is one line of the report (ok / FAIL / warn / skip); any FAIL makes the command
exit non-zero. Checks: the API answers (`/healthz`), readiness (`/readyz`: Redis and a
live replica per pool), every queue reachable (`/v1/queues`), the task list (`/v1/tasks`),
a `debug.echo` round trip, the worker registry (`/v1/workers`: a healthy worker per queue)
and the outside services as the workers' deep health checks see them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import httpx
from pydantic import BaseModel, Field, computed_field

from workers_core.registry.models import TagSummary, WorkerRecord, WorkerStatus

ECHO_TASK, ECHO_QUEUE = "debug.echo", "debug"
TERMINAL = {"succeeded", "failed", "dead", "cancelled"}
HEALTHY = {WorkerStatus.RUNNING, WorkerStatus.IDLE}


class Outcome(StrEnum):
    OK = "ok"
    FAIL = "FAIL"
    WARN = "warn"
    SKIP = "skip"


class Check(BaseModel):
    name: str
    outcome: Outcome
    detail: str = ""


class Report(BaseModel):
    url: str
    checks: list[Check] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return all(c.outcome is not Outcome.FAIL for c in self.checks)

    @property
    def api_unreachable(self) -> bool:
        return any(c.name == "api" and c.outcome is Outcome.FAIL for c in self.checks)

    def text(self) -> str:
        """One line per check, then the tally."""
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [f"workers-core validate {self.url}"]
        lines += [f"  {c.outcome.value:<4}  {c.name:<{width}}  {c.detail}".rstrip()
                  for c in self.checks]
        counts = {o: sum(c.outcome is o for c in self.checks) for o in Outcome}
        lines.append(", ".join(f"{n} {o.value}" for o, n in counts.items() if n)
                     + (": deployment OK" if self.ok else ": deployment NOT OK"))
        return "\n".join(lines)


class DeploymentValidator:
    """Runs the checks against one platform URL with one HTTP client."""

    def __init__(self, http: httpx.Client, echo_timeout_s: float = 60.0) -> None:
        self.http = http
        self.echo_timeout_s = echo_timeout_s
        self.queues: list[str] = []

    def run(self) -> Iterator[Check]:
        api = self.check_api()
        yield api
        if api.outcome is Outcome.FAIL:
            yield Check(name="rest", outcome=Outcome.SKIP, detail="the API does not answer")
            return
        yield from self.check_ready()
        yield from self.check_queues()
        yield self.check_tasks()
        yield self.check_echo()
        yield from self.check_workers()

    def check_api(self) -> Check:
        try:
            started = time.monotonic()
            resp = self.http.get("/healthz")
        except httpx.HTTPError as exc:
            return Check(name="api", outcome=Outcome.FAIL,
                         detail=f"nothing answers at {self.http.base_url}: {_describe(exc)}")
        if resp.status_code != 200:
            return Check(name="api", outcome=Outcome.FAIL,
                         detail=f"/healthz answered {resp.status_code}")
        return Check(name="api", outcome=Outcome.OK,
                     detail=f"/healthz answered in {(time.monotonic() - started) * 1000:.0f} ms")

    def check_ready(self) -> Iterator[Check]:
        """Redis, then each pool (the queues deployed are the pools /readyz probes)."""
        try:
            resp = self.http.get("/readyz")
            body = resp.json()
            checks: dict[str, str] = dict(body["checks"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            yield Check(name="ready", outcome=Outcome.FAIL, detail=f"/readyz: {_describe(exc)}")
            return
        redis = checks.pop("redis", "not reported")
        yield _verdict("redis", redis == "ok", redis if redis != "ok" else "answers")
        self.queues = sorted(k.removeprefix("pool:") for k in checks if k.startswith("pool:"))
        for queue in self.queues:
            problem = checks[f"pool:{queue}"]
            yield _verdict(f"pool {queue}", problem == "ok",
                           "a live replica answers" if problem == "ok" else problem)

    def check_queues(self) -> Iterator[Check]:
        try:
            resp = self.http.get("/v1/queues")
            resp.raise_for_status()
            stats = {q["queue"]: q for q in resp.json()}
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            yield Check(name="queues", outcome=Outcome.FAIL,
                        detail=f"/v1/queues: {_describe(exc)}")
            return
        for queue in self.queues:
            q = stats.get(queue)
            if q is None:
                yield Check(name=f"queue {queue}", outcome=Outcome.FAIL,
                            detail="missing from /v1/queues")
                continue
            detail = (f"replicas={q['replicas']} length={q['length']} lag={q['lag']} "
                      f"dead_lettered={q['dead_lettered']}")
            yield _verdict(f"queue {queue}", q["replicas"] > 0,
                           detail if q["replicas"] > 0 else f"no replica consumes it ({detail})")

    def check_tasks(self) -> Check:
        try:
            resp = self.http.get("/v1/tasks")
            resp.raise_for_status()
            tasks = {t["name"]: t["queue"] for t in resp.json()}
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            return Check(name="tasks", outcome=Outcome.FAIL, detail=f"/v1/tasks: {_describe(exc)}")
        orphans = sorted({q for q in tasks.values()} - set(self.queues)) if self.queues else []
        if orphans:
            return Check(name="tasks", outcome=Outcome.WARN,
                         detail=f"{len(tasks)} task types; no pool for queues {', '.join(orphans)}")
        return Check(name="tasks", outcome=Outcome.OK, detail=f"{len(tasks)} task types")

    def check_echo(self) -> Check:
        """Submit ``debug.echo`` with a fresh nonce; it must come back with that nonce."""
        if self.queues and ECHO_QUEUE not in self.queues:
            return Check(name="echo", outcome=Outcome.FAIL,
                         detail=f"queue {ECHO_QUEUE!r} is not deployed: {ECHO_TASK} cannot run")
        nonce = f"validate-{uuid.uuid4().hex}"
        started = time.monotonic()
        try:
            resp = self.http.post("/v1/jobs", json={
                "task": ECHO_TASK, "payload": {"message": nonce},
                "correlation_id": "workers-core-validate", "max_attempts": 1})
            resp.raise_for_status()
            job_id = resp.json()["id"]
            job = self._wait(job_id, started + self.echo_timeout_s)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            return Check(name="echo", outcome=Outcome.FAIL, detail=f"{ECHO_TASK}: {_describe(exc)}")
        took = f"{(time.monotonic() - started) * 1000:.0f} ms"
        if job["status"] != "succeeded":
            return Check(name="echo", outcome=Outcome.FAIL,
                         detail=f"job {job_id} is {job['status']} after {took}: {job.get('error')}")
        if (job.get("result") or {}).get("message") != nonce:
            return Check(name="echo", outcome=Outcome.FAIL,
                         detail=f"job {job_id} succeeded with another result: {job.get('result')}")
        return Check(name="echo", outcome=Outcome.OK, detail=f"job {job_id} round trip in {took}")

    def _wait(self, job_id: str, deadline: float) -> dict[str, Any]:
        while True:
            left = deadline - time.monotonic()
            resp = self.http.get(f"/v1/jobs/{job_id}", params={"wait": max(0.0, min(left, 10.0))},
                             timeout=(self.http.timeout.read or 10.0) + min(max(left, 0), 10.0))
            resp.raise_for_status()
            job: dict[str, Any] = resp.json()
            if job["status"] in TERMINAL or time.monotonic() >= deadline:
                return job

    def check_workers(self) -> Iterator[Check]:
        """A healthy registered worker per queue; the outside services their checks name."""
        try:
            resp = self.http.get("/v1/workers")
        except httpx.HTTPError as exc:
            yield Check(name="workers", outcome=Outcome.FAIL, detail=_describe(exc))
            return
        if resp.status_code in (404, 405):
            yield Check(name="workers", outcome=Outcome.WARN,
                        detail=f"registry not available (GET /v1/workers: {resp.status_code})")
            yield Check(name="external", outcome=Outcome.SKIP,
                        detail="no worker health details without the registry")
            return
        if resp.status_code in (401, 403):
            yield Check(name="workers", outcome=Outcome.WARN,
                        detail=f"GET /v1/workers: {resp.status_code} (needs workers:admin)")
            return
        try:
            resp.raise_for_status()
            by_tag = parse_workers(resp.json())
        except (httpx.HTTPError, ValueError) as exc:
            yield Check(name="workers", outcome=Outcome.FAIL,
                        detail=f"GET /v1/workers: {_describe(exc)}")
            return
        yield Check(name="workers", outcome=Outcome.OK,
                    detail=f"registry answers: {sum(map(len, by_tag.values()))} workers "
                           f"in {len(by_tag)} queues")
        for queue in self.queues or sorted(by_tag):
            yield worker_check(queue, by_tag.get(queue, []))
        yield external_check(by_tag)


def parse_workers(body: Any) -> dict[str, list[WorkerRecord]]:
    """``GET /v1/workers``: a list of per-queue summaries (or ``{"tags": [...]}``)."""
    items = body.get("tags", body.get("workers")) if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise ValueError("expected a list of queue summaries")
    out: dict[str, list[WorkerRecord]] = {}
    for item in items:
        if "workers" in item:
            summary = TagSummary.model_validate(item)
            out.setdefault(summary.tag, []).extend(summary.workers)
        else:
            record = WorkerRecord.model_validate(item)
            out.setdefault(record.tag, []).append(record)
    return out


def worker_check(queue: str, workers: list[WorkerRecord]) -> Check:
    healthy = [w for w in workers if w.status in HEALTHY and w.health.ok]
    if healthy:
        return Check(name=f"worker {queue}", outcome=Outcome.OK,
                     detail=f"{len(healthy)}/{len(workers)} healthy, score "
                            f"{min(w.health_score for w in healthy)}+")
    seen = ", ".join(f"{w.replica_id}: {w.status.value}" for w in workers) or "none registered"
    return Check(name=f"worker {queue}", outcome=Outcome.FAIL, detail=f"no healthy worker ({seen})")


def external_check(by_tag: dict[str, list[WorkerRecord]]) -> Check:
    """Outside services, judged from the deep health checks the workers last reported."""
    checks = {f"{w.tag}/{name}": value for ws in by_tag.values() for w in ws
              if w.status is not WorkerStatus.STOPPED for name, value in w.health.checks.items()}
    if not checks:
        return Check(name="external", outcome=Outcome.SKIP,
                     detail="no worker reported health check details")
    failing = sorted(f"{k}: {v}" for k, v in checks.items() if v.startswith("error"))
    if failing:
        return Check(name="external", outcome=Outcome.FAIL, detail="; ".join(failing))
    return Check(name="external", outcome=Outcome.OK, detail=f"{len(checks)} checks pass")


def validate_deployment(url: str, *, token: str | None = None, timeout_s: float = 10.0,
                        echo_timeout_s: float = 60.0,
                        transport: httpx.BaseTransport | None = None) -> Report:
    """Every check against ``url``; never raises for what the deployment answers."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    report = Report(url=url)
    with httpx.Client(base_url=url, headers=headers, timeout=timeout_s,
                      transport=transport) as http:
        report.checks.extend(DeploymentValidator(http, echo_timeout_s).run())
    return report


def _verdict(name: str, ok: bool, detail: str) -> Check:
    return Check(name=name, outcome=Outcome.OK if ok else Outcome.FAIL, detail=detail)


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code} {exc.response.text[:200]}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
