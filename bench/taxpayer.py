"""taxpayer.validate against ANAF's own floor: 10,000 CUIs cold, then the same CUIs cached.

    .venv/bin/python bench/taxpayer.py [--cuis 10000] [--found 1.0]

ANAF's v9 lookup takes at most 100 CUIs a request and 1 request a second per client
(doc_WS_V9.txt), so 10,000 CUIs are 100 requests and, since the first one needs no wait,
no client can finish them in less than 99 s: that is the floor the cold run is measured
against. The task paces itself at one request per 1.05 s (a 5 % margin so jitter never
makes two calls reach ANAF less than a second apart), so its own floor is 99 x 1.05 =
103.95 s; both ratios are printed. The cached run repeats the job: every answer comes from
Redis, no request is sent, and it is compared with the cold run.

What runs, all on loopback, started and stopped by the script:

- a private ``redis-server`` (AOF, fsync always, as the platform runs it): the cache, the
  cluster-wide rate limiter and the progress hash;
- the ANAF sandbox in a child process (so that its JSON work neither shares this
  process's GIL nor counts in its CPU time), ENFORCING 100 CUIs and 1 req/s (a faster
  client gets 429); its registry holds ``--found`` of the CUIs (valid check digits), the
  rest come back in ``notFound``;
- ``ValidateTaxpayers`` called in this process through ``Task.run`` with a ``JobContext``
  whose progress recorder writes to Redis, as a pool replica does (like bench/ocr.py). Ray
  and the gateway are left out on purpose: one job's trip through the platform costs
  tens of milliseconds, noise against a 100-second job, while starting Ray on the two
  shared cores would disturb the timing far more than it adds to it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import multiprocessing
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workers_core.config import Settings  # noqa: E402
from workers_core.integrations.anaf.cui import with_check_digit  # noqa: E402
from workers_core.integrations.anaf.http import PUBLIC_LOOKUP_RATE  # noqa: E402
from workers_core.integrations.anaf.taxpayer import MAX_CUIS_PER_REQUEST  # noqa: E402
from workers_core.jobs.keys import RedisKeys  # noqa: E402
from workers_core.jobs.progress import ProgressRecorder  # noqa: E402
from workers_core.local.redis_server import RedisServer  # noqa: E402
from workers_core.logs import configure_logging  # noqa: E402
from workers_core.sandbox.anaf import AnafSandbox, AnafSandboxState, company  # noqa: E402
from workers_core.tasks.anaf_taxpayer import (  # noqa: E402
    MAX_CUIS,
    TaxpayerPayload,
    TaxpayerResult,
    ValidateTaxpayers,
)
from workers_core.tasks.base import JobContext  # noqa: E402

ANAF_INTERVAL_S = 1.0  # doc_WS_V9.txt: "maxim 1 request pe secunda"
FIRST_CUI_BODY = 10_000_000  # 9-digit CUIs: body + check digit


def bench_cuis(count: int) -> list[int]:
    return [with_check_digit(FIRST_CUI_BODY + i) for i in range(count)]


def registered(cuis: list[int], found: float) -> list[int]:
    """Every k-th CUI is in the registry, so each request mixes found and not found."""
    if found <= 0:
        return []
    step = max(1, round(1 / found))
    return cuis[::step]


def serve_sandbox(count: int, found: float, conn: Connection) -> None:
    """Child process: the sandbox with the bench registry; sends its URL, serves until told."""
    companies = {c: company(c, f"FIRMA {c} SRL") for c in registered(bench_cuis(count), found)}
    with AnafSandbox(state=AnafSandboxState(companies=companies)) as sandbox:
        conn.send(sandbox.url)
        conn.recv()


@dataclass
class Run:
    name: str
    wall_s: float
    cpu_s: float
    result: TaxpayerResult


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_job(task: ValidateTaxpayers, payload: TaxpayerPayload, name: str) -> Run:
    job_id = f"bench-{uuid.uuid4().hex[:8]}"
    settings = task.settings
    ctx = JobContext(
        job_id=job_id,
        task=task.name,
        queue=task.queue,
        attempt=1,
        max_attempts=1,
        correlation_id=None,
        settings=settings,
        progress=ProgressRecorder(
            task.redis, RedisKeys(settings.redis_prefix), job_id, settings.result_ttl_s
        ),
    )
    cpu, started = time.process_time(), time.perf_counter()
    result = await task.run(payload, ctx)
    return Run(name, time.perf_counter() - started, time.process_time() - cpu, result)


async def bench(settings: Settings, count: int) -> list[Run]:
    payload = TaxpayerPayload(cuis=[str(c) for c in bench_cuis(count)])
    task = ValidateTaxpayers(settings)
    await task.setup()
    try:
        cold = await run_job(task, payload, "cold (empty cache)")
        cached = await run_job(task, payload, "cached (all hits)")
    finally:
        await task.close()
    return [cold, cached]


def sandbox_calls(url: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = httpx.get(f"{url}/_sandbox/state").json()["lookups"]
    return calls


def ratio(seconds: float, floor_s: float) -> str:
    return f"{seconds / floor_s:.3f}x" if floor_s > 0 else "-"


def report(runs: list[Run], calls: list[dict[str, Any]], count: int, load: str) -> str:
    cold, cached = runs
    requests = math.ceil(count / MAX_CUIS_PER_REQUEST)
    anaf_floor = (requests - 1) * ANAF_INTERVAL_S
    pace_floor = (requests - 1) * PUBLIC_LOOKUP_RATE.interval_s
    answered = [c for c in calls if c["status"] == 200]
    refused = len(calls) - len(answered)
    arrivals = [c["at"] for c in answered]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    lines = [
        f"taxpayer bench: {platform.machine()}, {os.cpu_count()} CPUs, load avg {load}; "
        f"{count:,} CUIs ({len(cold.result.companies):,} found, "
        f"{len(cold.result.not_found):,} not found) -> {requests} requests of <= "
        f"{MAX_CUIS_PER_REQUEST}",
        "",
        "| run | wall s | requests | cached | CPU s (client) | vs ANAF floor | vs own pace |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        r = run.result
        lines.append(
            f"| {run.name} | {run.wall_s:.2f} | {r.requests} | {r.cached:,} | {run.cpu_s:.2f} "
            f"| {ratio(run.wall_s, anaf_floor)} | {ratio(run.wall_s, pace_floor)} |"
        )
    lines += [
        "",
        f"ANAF floor: ({requests} - 1) requests x {ANAF_INTERVAL_S:.2f} s = {anaf_floor:.2f} s "
        f"(the first request needs no wait); own pace: x {PUBLIC_LOOKUP_RATE.interval_s:.2f} s "
        f"= {pace_floor:.2f} s.",
        f"cold beyond its own pace: {cold.wall_s - pace_floor:.2f} s "
        f"({(cold.wall_s - pace_floor) / requests * 1000:.0f} ms per request).",
        f"cached: {cached.wall_s:.3f} s = {cold.wall_s / cached.wall_s:.0f}x faster than cold "
        f"({cached.wall_s / cold.wall_s:.2%} of it), "
        f"{cached.wall_s / count * 1e6:.0f} us per CUI; the result is "
        f"{len(cold.result.model_dump_json()) / 1e6:.1f} MB of JSON (stored in the job).",
        f"sandbox saw {len(calls)} lookups: {len(answered)} answered, {refused} refused "
        f"(429, over 1 req/s)"
        + (
            f"; gaps between answered arrivals min {min(gaps):.3f} s, "
            f"median {statistics.median(gaps):.3f} s, max {max(gaps):.3f} s."
            if gaps
            else "."
        ),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--cuis", type=int, default=MAX_CUIS, help=f"CUIs in the job (1 to {MAX_CUIS:,})"
    )
    parser.add_argument(
        "--found", type=float, default=1.0, help="share of the CUIs in the sandbox's registry"
    )
    args = parser.parse_args()
    if not 1 <= args.cuis <= MAX_CUIS:
        parser.error(f"--cuis must be 1 to {MAX_CUIS}")
    configure_logging("WARNING", json=False)
    load_before = f"{os.getloadavg()[0]:.2f}"
    parent, child = multiprocessing.get_context("spawn").Pipe()
    sandbox = multiprocessing.get_context("spawn").Process(
        target=serve_sandbox, args=(args.cuis, args.found, child), daemon=True
    )
    sandbox.start()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), free_port())
        server.start()
        try:
            if not parent.poll(60):
                raise SystemExit("the ANAF sandbox did not start")
            url = parent.recv()
            settings = Settings(
                _env_file=None,
                redis_url=server.url,
                redis_prefix="benchtax",
                anaf_public_url=url,
            )
            runs = asyncio.run(bench(settings, args.cuis))
            calls = sandbox_calls(url)
        finally:
            parent.send("stop")
            sandbox.join(timeout=15)
            server.stop()
    load = f"{load_before} before / {os.getloadavg()[0]:.2f} after"
    print(report(runs, calls, args.cuis, load))


if __name__ == "__main__":
    main()
