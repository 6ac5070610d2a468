"""No-op job throughput: the platform (HTTP single and batch) against Celery 5 and Ray Serve.

    .venv/bin/python bench/throughput.py [--jobs N] [--concurrency C] [--rounds R]

Everything runs on this machine, side by side, against one private Redis with AOF and
``appendfsync always`` (as ``workers-core up`` runs it): the platform on db 0, Celery's
broker and result backend on db 1. Each scenario pushes the same N no-op jobs and is timed
end to end, from the first submission to the last job finished. Read the ratios between
rows, not the absolute numbers (bench/README.md).

Scenarios (``--scenarios``):

- ``celery``       a Celery 5 worker (``--pool prefork --concurrency C``), ``apply_async`` each
- ``http-batch``   the platform, ``POST /v1/jobs:batch`` of ``--batch-size`` jobs
- ``http-single``  the platform, one ``POST /v1/jobs`` per job (``--http-concurrency`` at once)
- ``sdk``          the platform through ``WorkersClient.submit_many`` (1,000 per request)
- ``serve-handle`` floor: a no-op Serve deployment called N times through a handle
- ``serve-http``   floor: a no-op Serve deployment behind Serve's HTTP proxy, one POST a call

``celery`` and ``http-batch`` (the headline ratio) run ``--rounds`` times, alternating and
in reverse order every other round, so that a burst of noise from a neighbour hits both;
the table shows medians. The others run once. The platform's ``debug`` queue gets
``--replicas`` replicas sharing C job slots: both systems run at most C jobs at once.
Besides the wall clock, the CPU time of each system's processes (and Redis) is charged to
its run, a second ratio that a busy neighbour disturbs less. The table is printed and
written to ``bench/results/throughput-latest.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis

from workers_core.config import QueueOverrides, Settings
from workers_core.local.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "throughput-latest.md"
SCENARIOS = ("celery", "http-batch", "sdk", "http-single", "serve-handle", "serve-http")
PLATFORM_SCENARIOS = ("http-batch", "sdk", "http-single")
ROUNDED = ("celery", "http-batch")  # repeated --rounds times, alternating
PLATFORM_APP = "workers"
PREFIX = "bench"
PAYLOAD: dict[str, Any] = {"message": "hi"}
CELERY_TASK = "bench.noop"  # bench/celery_app.py


# -- results ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One scenario run: N jobs, first submission to last finish, per-job latencies."""

    scenario: str
    label: str
    jobs: int
    seconds: float
    submit_seconds: float
    latencies_s: list[float] = field(default_factory=list)
    note: str = ""
    server_cpu_s: float | None = None  # the system's processes + Redis, while it ran
    client_cpu_s: float | None = None  # this process (submitting, waiting)

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: int) -> float | None:
        if len(self.latencies_s) < 2:
            return None
        cuts = statistics.quantiles(self.latencies_s, n=100, method="inclusive")
        return 1000 * cuts[q - 1]


def _middle(runs: list[Outcome]) -> Outcome:
    """The run whose rate is the median one (the lower middle for an even count)."""
    return sorted(runs, key=lambda o: o.rate)[(len(runs) - 1) // 2]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _cpu_ms(runs: list[Outcome]) -> tuple[float, float] | None:
    """Median server and client CPU milliseconds per job over the runs."""
    measured = [o for o in runs if o.server_cpu_s is not None and o.client_cpu_s is not None]
    if not measured:
        return None
    server = statistics.median(1000 * (o.server_cpu_s or 0) / o.jobs for o in measured)
    client = statistics.median(1000 * (o.client_cpu_s or 0) / o.jobs for o in measured)
    return server, client


def render(runs: list[Outcome], args: argparse.Namespace, meta: dict[str, str]) -> str:
    """The markdown report: one row per scenario, ratios to Celery, how it was run.

    Rows run in rounds show median values; the batch row's ratio is the median of the
    per-round ratios (each batch run against the Celery run of its round)."""
    by: dict[str, list[Outcome]] = {}
    for o in runs:
        by.setdefault(o.scenario, []).append(o)
    rates = {s: statistics.median(o.rate for o in rs) for s, rs in by.items()}
    cpus = {s: _cpu_ms(rs) for s, rs in by.items()}
    batch, celery = by.get("http-batch", []), by.get("celery", [])
    paired = [b.rate / c.rate for b, c in zip(batch, celery, strict=False)]
    lines = [
        f"{args.jobs:,} no-op jobs per scenario; worker concurrency {args.concurrency} "
        f"(Celery `--pool {args.celery_pool} --concurrency {args.concurrency}`; platform "
        f"{args.replicas} replica(s) x {_slots(args)} slots); Redis appendfsync "
        f"{args.appendfsync}; {meta['when']}.",
        "",
        "| scenario | jobs/s | x Celery | p50 ms | p99 ms | CPU ms/job | x Celery by CPU |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    celery_cpu = cpus.get("celery")
    for scenario, rs in by.items():
        o, cpu = _middle(rs), cpus[scenario]
        ratio = by_cpu = "-"
        if celery:
            r = statistics.median(paired) if scenario == "http-batch" else None
            ratio = f"**{r or rates[scenario] / rates['celery']:.2f}**"
        if celery_cpu and cpu:
            by_cpu = f"{sum(celery_cpu) / sum(cpu):.2f}"
        lines.append(
            f"| {o.label} | {rates[scenario]:,.0f} | {ratio} | {_ms(o.percentile_ms(50))} | "
            f"{_ms(o.percentile_ms(99))} | "
            f"{f'{cpu[0]:.2f} + {cpu[1]:.2f}' if cpu else '-'} | {by_cpu} |"
        )
    lines.append("")
    if len(batch) > 1 or len(celery) > 1:
        per_round = "; ".join(
            f"{s} " + ", ".join(f"{o.rate:,.0f}" for o in by[s]) for s in ROUNDED if s in by
        )
        ratios = f"; batch/Celery {', '.join(f'{p:.2f}' for p in paired)}" if paired else ""
        lines.append(f"- jobs/s per round: {per_round}{ratios}")
    for rs in by.values():
        o = _middle(rs)
        lines.append(
            f"- {o.label}: {o.note}; submitting took {o.submit_seconds:.1f} s, "
            f"all done after {o.seconds:.1f} s"
        )
    lines += [
        "- CPU ms/job = server (the system's processes and Redis) + client (this bench "
        "process), CPU time during the run over the jobs; x Celery by CPU compares the "
        "totals, which a noisy neighbour disturbs less than the wall clock",
        f"- machine: {meta['machine']}; load average {meta['load']}; bench took {meta['took']}",
        f"- command: `{meta['command']}`",
        "",
    ]
    return "\n".join(lines)


# -- CPU accounting ---------------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, int, float]]:
    """pid -> (ppid, process group, CPU seconds) for every process (Linux ``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, int, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()  # from field 3 (state) on
        cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        table[int(entry.name)] = (int(fields[1]), int(fields[2]), cpu)
    return table


@dataclass
class CpuMeter:
    """CPU seconds used so far by Redis, the Celery worker (its process group), Ray (every
    other descendant of this process: GCS, raylet, Serve's proxy, controller and replicas)
    and this process."""

    redis_pid: int | None = None
    celery_pgid: int | None = None

    def sample(self) -> dict[str, float]:
        out = {"redis": 0.0, "celery": 0.0, "ray": 0.0, "client": time.process_time()}
        if not os.path.isdir("/proc"):
            return out
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        todo = list(children.get(os.getpid(), []))
        while todo:
            pid = todo.pop()
            todo.extend(children.get(pid, []))
            _, pgrp, cpu = table[pid]
            if pid == self.redis_pid:
                out["redis"] += cpu
            elif self.celery_pgid is not None and pgrp == self.celery_pgid:
                out["celery"] += cpu
            else:
                out["ray"] += cpu
        return out

    def charge(self, outcome: Outcome, system: str, before: dict[str, float]) -> Outcome:
        """Set the outcome's CPU from ``before`` (a sample) to now."""
        if os.path.isdir("/proc"):
            after = self.sample()
            outcome.server_cpu_s = after[system] - before[system] + after["redis"] - before["redis"]
            outcome.client_cpu_s = after["client"] - before["client"]
        return outcome


# -- helpers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _slots(args: argparse.Namespace) -> int:
    return max(1, int(args.concurrency) // int(args.replicas))


def _wait_until(
    check: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _unwind_on_signals() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, so every ``finally`` cleans up. Called
    again after ``ray.init``, whose core worker installs its own SIGTERM handler."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


# -- Celery -----------------------------------------------------------------------------------


@contextlib.contextmanager
def celery_worker(url: str, args: argparse.Namespace, logdir: Path) -> Iterator[tuple[Any, int]]:
    """A Celery worker subprocess on ``url``: (a client app, its process group); stopped on
    exit."""
    from celery import Celery

    env = {**os.environ, "BENCH_CELERY_URL": url, "PYTHONPATH": str(ROOT)}
    cmd = [
        str(Path(sys.executable).with_name("celery")),
        "-A",
        "bench.celery_app",
        "worker",
        "--pool",
        args.celery_pool,
        "--concurrency",
        str(args.concurrency),
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        f"bench-{os.getpid()}@%h",
    ]
    with (logdir / "celery-worker.log").open("wb") as log:
        # Its own session: a Ctrl-C in the terminal reaches us, and we stop it in order.
        worker = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        client = Celery("bench", broker=url, backend=url)
        client.conf.update(
            task_serializer="json",
            result_serializer="json",
            accept_content=["json"],
            broker_connection_retry_on_startup=True,
        )
        try:
            yield client, worker.pid
        finally:
            with contextlib.suppress(Exception):
                client.close()
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)  # warm shutdown, children included
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait()


def _celery_results(r: redis.Redis, ids: list[str], timeout_s: float) -> list[dict[str, Any]]:
    """Wait until every task has its result; read them straight from the backend's keys."""
    metas: dict[str, dict[str, Any]] = {}
    remaining = list(ids)
    deadline = time.monotonic() + timeout_s
    while remaining:
        window = remaining[:500]  # tasks finish roughly in order: look at the oldest only
        raw = r.mget([f"celery-task-meta-{i}" for i in window])
        for i, value in zip(window, raw, strict=True):
            if value is not None:
                metas[i] = json.loads(value)
        if any(v is not None for v in raw):
            remaining = [i for i in remaining if i not in metas]
        else:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(remaining)} Celery tasks did not finish")
            time.sleep(0.1)
    return [metas[i] for i in ids]


def run_celery(app: Any, r: redis.Redis, args: argparse.Namespace, meter: CpuMeter) -> Outcome:
    _log(f"celery: {args.jobs} jobs")
    cpu = meter.sample()
    submitted: list[float] = []
    ids: list[str] = []
    t0 = time.time()
    for _ in range(args.jobs):
        # Task.apply_async is this call: one message (LPUSH) per job.
        submitted.append(time.time())
        ids.append(app.send_task(CELERY_TASK, kwargs=PAYLOAD).id)
    t_submitted = time.time()
    metas = _celery_results(r, ids, timeout_s=args.timeout)
    outcome = Outcome(
        scenario="celery",
        label=f"Celery 5 ({args.celery_pool}), apply_async per job",
        jobs=args.jobs,
        seconds=0,
        submit_seconds=t_submitted - t0,
        note="latency = apply_async call → result's date_done",
    )
    meter.charge(outcome, "celery", cpu)
    failed = sum(m["status"] != "SUCCESS" for m in metas)
    if failed:
        raise RuntimeError(f"celery: {failed} tasks did not succeed")
    done = [datetime.fromisoformat(m["date_done"]).timestamp() for m in metas]
    outcome.seconds = max(done) - t0
    outcome.latencies_s = [d - s for d, s in zip(done, submitted, strict=True)]
    return outcome


def warm_celery(app: Any, r: redis.Redis, n: int) -> None:
    ids = [app.send_task(CELERY_TASK, kwargs=PAYLOAD).id for _ in range(n)]
    _celery_results(r, ids, timeout_s=120)


# -- the platform -----------------------------------------------------------------------------


def platform_settings(redis_url: str, args: argparse.Namespace) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=redis_url,
        redis_prefix=PREFIX,
        enabled_queues=["debug"],
        queues={"debug": QueueOverrides(replicas=args.replicas, concurrency=_slots(args))},
        shutdown_grace_s=2.0,
        log_level="WARNING",
    )


@contextlib.contextmanager
def ray_and_serve(http_port: int, num_cpus: int) -> Iterator[None]:
    """A private local Ray instance with Serve's proxy on ``http_port``; torn down on exit."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    # address="local": never attach to a Ray someone else started on this machine.
    for attempt in (1, 2):  # a busy machine can miss Ray's 30 s raylet start deadline
        try:
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                namespace=f"bench-{os.getpid()}",
                logging_level=logging.WARNING,
            )
            break
        except Exception as exc:
            ray.shutdown()
            if attempt == 2:
                raise
            _log(f"Ray did not start ({exc}); trying once more")
    _unwind_on_signals()
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": http_port})
        yield
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


def deploy_platform(settings: Settings, base_url: str) -> None:
    from ray import serve

    from workers_core.deployments.app import build_platform

    serve.run(build_platform(settings), name=PLATFORM_APP, route_prefix="/")

    def ready() -> bool:
        try:
            return httpx.get(f"{base_url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    _wait_until(ready, 180, "the platform's /readyz", every_s=0.25)


def _unfinished(r: redis.Redis) -> int:
    """What ``GET /v1/queues`` reports as length + delayed for ``debug``, read from Redis
    directly so that polling costs the gateway nothing (acknowledged entries are deleted,
    so the stream's length is 'not finished yet')."""
    pipe = r.pipeline(transaction=False)
    pipe.xlen(f"{PREFIX}:q:debug")
    pipe.zcard(f"{PREFIX}:delayed:debug")
    return sum(int(n) for n in pipe.execute())


def _platform_outcome(
    scenario: str,
    label: str,
    r: redis.Redis,
    ids: list[str],
    t0: float,
    t_submitted: float,
    note: str,
) -> Outcome:
    """Check every job succeeded (job hashes); latency is created_at → finished_at."""
    pipe = r.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(f"{PREFIX}:job:{job_id}", "status", "created_at", "finished_at")
    rows = pipe.execute()
    bad = [s for s, _, _ in rows if s != b"succeeded"]
    if bad:
        raise RuntimeError(f"{scenario}: {len(bad)} jobs did not succeed (e.g. {bad[0]!r})")
    return Outcome(
        scenario=scenario,
        label=label,
        jobs=len(ids),
        seconds=max(float(f) for _, _, f in rows) - t0,
        submit_seconds=t_submitted - t0,
        latencies_s=[float(f) - float(c) for _, c, f in rows],
        note=note,
    )


async def _concurrently(n_workers: int, items: list[Any], call: Callable[[Any], Any]) -> None:
    """Run ``await call(item)`` for every item, ``n_workers`` at a time."""
    todo = iter(items)

    async def worker() -> None:
        for item in todo:
            await call(item)

    await asyncio.gather(*(worker() for _ in range(n_workers)))


async def _post_singles(base_url: str, n: int, in_flight: int) -> list[str]:
    ids: list[str] = []
    body = {"task": "debug.echo", "payload": PAYLOAD}
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def post(_: int) -> None:
            for attempt in range(20):  # 429: the gateway's backpressure; honour it
                resp = await client.post("/v1/jobs", json=body)
                if resp.status_code != 429:
                    break
                await asyncio.sleep(0.05 * (attempt + 1))
            resp.raise_for_status()
            ids.append(resp.json()["id"])

        await _concurrently(in_flight, list(range(n)), post)
    return ids


async def _post_batches(base_url: str, n: int, size: int, in_flight: int) -> list[str]:
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:

        async def post(k: int) -> None:
            jobs = [{"task": "debug.echo", "payload": PAYLOAD}] * k
            resp = await client.post("/v1/jobs:batch", json={"jobs": jobs})
            resp.raise_for_status()
            ids.extend(j["id"] for j in resp.json()["jobs"])

        await _concurrently(in_flight, [min(size, n - i) for i in range(0, n, size)], post)
    return ids


def run_platform(
    kind: str, base_url: str, r: redis.Redis, args: argparse.Namespace, meter: CpuMeter
) -> Outcome:
    _log(f"{kind}: {args.jobs} jobs")
    cpu = meter.sample()
    t0 = time.time()
    if kind == "sdk":
        from workers_core.client import WorkersClient

        with WorkersClient(base_url, timeout_s=120) as wc:
            ids = [a.id for a in wc.submit_many(
                {"task": "debug.echo", "payload": PAYLOAD} for _ in range(args.jobs))]
        label = "platform, Python SDK submit_many"
        note = "one request per 1,000 jobs, sequential"
    elif kind == "http-single":
        ids = asyncio.run(_post_singles(base_url, args.jobs, args.http_concurrency))
        label = "platform, POST /v1/jobs per job"
        note = f"{args.http_concurrency} requests in flight"
    else:
        ids = asyncio.run(
            _post_batches(base_url, args.jobs, args.batch_size, args.batch_concurrency)
        )
        label = f"platform, POST /v1/jobs:batch of {args.batch_size}"
        note = f"{args.batch_concurrency} batches in flight"
    t_submitted = time.time()
    _wait_until(lambda: _unfinished(r) == 0, args.timeout, f"{kind} jobs to finish")
    outcome = _platform_outcome(
        kind, label, r, ids, t0, t_submitted, note + "; latency = job created_at → finished_at"
    )
    return meter.charge(outcome, "ray", cpu)


def warm_platform(base_url: str, r: redis.Redis, n: int) -> None:
    if n <= 0:
        return
    jobs = [{"task": "debug.echo", "payload": PAYLOAD}] * n
    httpx.post(f"{base_url}/v1/jobs:batch", json={"jobs": jobs}, timeout=60).raise_for_status()
    _wait_until(lambda: _unfinished(r) == 0, 120, "warm-up jobs")


# -- Ray Serve floors -------------------------------------------------------------------------


class NoopDeployment:
    """The floor: a Serve deployment that does nothing, called by handle or over HTTP."""

    async def __call__(self, request: Any) -> dict[str, Any]:
        if hasattr(request, "json"):  # over HTTP: a Starlette request
            return dict(await request.json())
        return dict(request)


FLOOR_APP, FLOOR_ROUTE = "floor", "/floor"


def deploy_floor(base_url: str, args: argparse.Namespace) -> None:
    """One no-op app for both floors: called by handle, and over HTTP at ``/floor``."""
    from ray import serve

    # Room for every call in flight: a full replica makes Serve's router back off and
    # retry, which would time that back-off rather than Serve's cost per call.
    deployment = serve.deployment(
        name="Noop",
        num_replicas=args.replicas,
        max_ongoing_requests=max(_slots(args), args.http_concurrency),
        ray_actor_options={"num_cpus": 0.1},
    )(NoopDeployment)
    handle = serve.run(deployment.bind(), name=FLOOR_APP, route_prefix=FLOOR_ROUTE)
    for _ in range(args.warmup):
        handle.remote(PAYLOAD).result()
        httpx.post(f"{base_url}{FLOOR_ROUTE}", json=PAYLOAD, timeout=30).raise_for_status()


def run_serve_handle(args: argparse.Namespace, meter: CpuMeter) -> Outcome:
    from ray import serve

    handle = serve.get_app_handle(FLOOR_APP)
    _log(f"serve-handle: {args.jobs} calls")
    latencies: list[float] = []

    async def call(_: int) -> None:
        start = time.perf_counter()
        await handle.remote(PAYLOAD)
        latencies.append(time.perf_counter() - start)

    cpu = meter.sample()
    t0 = time.perf_counter()
    asyncio.run(_concurrently(args.http_concurrency, list(range(args.jobs)), call))
    seconds = time.perf_counter() - t0
    outcome = Outcome(
        "serve-handle",
        "floor: Serve handle → no-op deployment",
        args.jobs,
        seconds,
        seconds,
        latencies,
        f"{args.http_concurrency} calls in flight; latency = one call",
    )
    return meter.charge(outcome, "ray", cpu)


def run_serve_http(base_url: str, args: argparse.Namespace, meter: CpuMeter) -> Outcome:
    _log(f"serve-http: {args.jobs} requests")
    latencies: list[float] = []

    async def calls() -> None:
        limits = httpx.Limits(
            max_connections=args.http_concurrency, max_keepalive_connections=args.http_concurrency
        )
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

            async def call(_: int) -> None:
                start = time.perf_counter()
                (await client.post(FLOOR_ROUTE, json=PAYLOAD)).raise_for_status()
                latencies.append(time.perf_counter() - start)

            await _concurrently(args.http_concurrency, list(range(args.jobs)), call)

    cpu = meter.sample()
    t0 = time.perf_counter()
    asyncio.run(calls())
    seconds = time.perf_counter() - t0
    outcome = Outcome(
        "serve-http",
        "floor: Serve HTTP proxy → no-op deployment",
        args.jobs,
        seconds,
        seconds,
        latencies,
        f"{args.http_concurrency} requests in flight; latency = one request",
    )
    return meter.charge(outcome, "ray", cpu)


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=2000, help="jobs per scenario (default 2000)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="jobs run at once: Celery --concurrency, platform slots (default 8)",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="platform debug replicas sharing the slots (default 1)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="runs of celery and http-batch, alternating (default 3)",
    )
    p.add_argument("--celery-pool", default="prefork", choices=["prefork", "threads", "solo"])
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--batch-concurrency", type=int, default=2, help="batches in flight")
    p.add_argument(
        "--http-concurrency",
        type=int,
        default=32,
        help="requests in flight for http-single and the Serve floors",
    )
    p.add_argument(
        "--appendfsync",
        default="always",
        choices=["always", "everysec", "no"],
        help="the Redis AOF fsync policy (default always, as in production)",
    )
    p.add_argument("--warmup", type=int, default=50, help="jobs before each system's first run")
    p.add_argument("--timeout", type=float, default=300, help="per scenario, seconds")
    p.add_argument("--ray-cpus", type=int, default=8, help="logical CPUs given to Ray")
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    p.add_argument("--output", type=Path, default=RESULTS, help="where the table goes too")
    args = p.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


def _plan(args: argparse.Namespace) -> list[str]:
    """Rounds of celery/http-batch (order flipped every other round), then the rest once."""
    rounded = [s for s in ROUNDED if s in args.scenarios]
    plan: list[str] = []
    for i in range(max(1, args.rounds)):
        plan += rounded if i % 2 == 0 else rounded[::-1]
    return plan + [s for s in args.scenarios if s not in ROUNDED]


def run(args: argparse.Namespace) -> list[Outcome]:
    """Start Redis, the Celery worker, Ray + the platform; run the plan; clean everything."""
    plan = _plan(args)
    runs: list[Outcome] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wc-bench-")))
        server = RedisServer(tmp / "redis", free_port(), appendfsync=args.appendfsync)
        server.start()
        stack.callback(server.stop)
        base = f"redis://127.0.0.1:{server.port}"
        _log(f"redis on {base} (appendfsync {args.appendfsync}), data in {tmp}")
        meter = CpuMeter(redis_pid=int(server.pidfile.read_text().strip()))
        celery_redis = stack.enter_context(redis.Redis.from_url(f"{base}/1"))
        platform_redis = stack.enter_context(redis.Redis.from_url(f"{base}/0"))
        celery_app = None
        if "celery" in plan:
            celery_app, meter.celery_pgid = stack.enter_context(
                celery_worker(f"{base}/1", args, tmp)
            )
            warm_celery(celery_app, celery_redis, args.warmup)
            _log(f"celery worker up: --pool {args.celery_pool} --concurrency {args.concurrency}")
        base_url = ""
        if set(plan) - {"celery"}:
            http_port = free_port()
            base_url = f"http://127.0.0.1:{http_port}"
            _log("starting Ray and Serve")
            stack.enter_context(ray_and_serve(http_port, args.ray_cpus))
            if set(PLATFORM_SCENARIOS) & set(plan):
                deploy_platform(platform_settings(f"{base}/0", args), base_url)
                warm_platform(base_url, platform_redis, args.warmup)
                _log(f"platform up: {args.replicas} replica(s) x {_slots(args)} slots")
        floor_up = False
        for scenario in plan:
            if scenario == "celery":
                runs.append(run_celery(celery_app, celery_redis, args, meter))
            elif scenario in PLATFORM_SCENARIOS:
                runs.append(run_platform(scenario, base_url, platform_redis, args, meter))
            else:
                if not floor_up:
                    deploy_floor(base_url, args)
                    floor_up = True
                if scenario == "serve-handle":
                    runs.append(run_serve_handle(args, meter))
                else:
                    runs.append(run_serve_http(base_url, args, meter))
            _log(f"  {runs[-1].rate:,.0f} jobs/s")
        _log("cleaning up")
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    _unwind_on_signals()
    try:
        runs = run(args)
    except KeyboardInterrupt:
        _log("interrupted; everything stopped")
        return 130
    meta = {
        "when": f"{datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        "machine": f"{os.cpu_count()} CPUs, {platform.platform(terse=True)}, "
        f"Python {platform.python_version()}",
        "load": f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after",
        "took": f"{time.monotonic() - started:.0f} s",
        "command": " ".join(["python", *(sys.argv if argv is None else [__file__, *argv])]),
    }
    report = render(runs, args, meta)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    _log(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
