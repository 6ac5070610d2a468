"""Load: a burst of concurrent jobs to every worker type at once, then a sustained rate.

    .venv/bin/python bench/load.py [--burst 100] [--rate 1] [--duration 30] [--types ...]
    .venv/bin/python bench/load.py --url http://127.0.0.1:8000     # a platform already up

Without ``--url`` the script starts everything it needs on loopback and stops it again: a
private redis-server (AOF, ``appendfsync always``), an aiosmtpd SMTP server, the Slack and
ANAF sandboxes, a private local Ray with Serve, and the platform with one pool per queue of
the chosen types (cheap pools autoscale 1..3 on backlog, heavy ones have one replica).

Phase 1 (burst) sends ``--burst`` jobs to each type, all types at once, as concurrent
single ``POST /v1/jobs``; phase 2 (sustained) sends ``--rate`` jobs a second to each type
for ``--duration`` seconds. Each phase waits (at most ``--timeout`` s) for every job, then
reports per type: latency p50/p95/p99 (the job's ``created_at`` to ``finished_at``, both
Redis-side), throughput (jobs finished per second of the phase's span), the failure rate
of accepted jobs (failed, dead or unfinished at the deadline), the submissions refused at
the door (429 backpressure, 503) and the pool's replicas (min..max seen).

``taxpayer.validate`` asks ANAF at most once a second (ANAF's limit, enforced by the
sandbox): its jobs here reuse ``--taxpayer-cuis`` CUIs looked up once before the burst, so
the figures are the platform's own (cached answers); bench/taxpayer.py measures cold
lookups against ANAF's pacing. Absolute numbers from 2 shared cores mean little: compare
types and phases within one run (bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workers_core.client.sync import WorkersClient  # noqa: E402
from workers_core.config import QueueOverrides, Settings  # noqa: E402
from workers_core.integrations.anaf.cui import with_check_digit  # noqa: E402
from workers_core.local.redis_server import RedisServer  # noqa: E402
from workers_core.tasks.registry import TaskCatalog  # noqa: E402

TYPES = ("debug.echo", "email.send", "notify.slack", "taxpayer.validate", "pdf.render",
         "ocr.extract", "saft.generate")
QUEUES = {t: TaskCatalog.discover().get(t).queue for t in TYPES}
AUTOSCALED = {"debug", "email.send", "notify.slack"}  # cheap pools: 1..3 replicas on backlog
TERMINAL = {"succeeded", "failed", "dead", "cancelled"}


def _log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- payloads ---------------------------------------------------------------------------------


def _ocr_image() -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (900, 160), 255)
    font = ImageFont.load_default(size=48)
    ImageDraw.Draw(image).text((30, 50), "Factura 42 total 119,00 RON", fill=0, font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _saft_inputs(client: WorkersClient) -> dict[str, Any]:
    from workers_core.saft.sample import write_sample

    with tempfile.TemporaryDirectory(prefix="load-saft-") as tmp:
        header = write_sample(Path(tmp), 12)
        inputs = {p.stem: client.upload(p, "application/x-ndjson", p.name).id
                  for p in sorted(Path(tmp).glob("*.jsonl"))}
    return {"header": header.model_dump(mode="json"), "inputs": inputs}


def payloads(types: list[str], client: WorkersClient, cuis: list[int]) -> dict[str, Any]:
    """One payload builder per type: ``make(i)`` gives the i-th job's payload."""
    built: dict[str, Any] = {
        "debug.echo": lambda i: {"message": f"load {i}"},
        "email.send": lambda i: {"to": ["load@firma.ro"], "subject": f"load {i}", "text": "x"},
        "notify.slack": lambda i: {"text": f"load {i}"},
        "taxpayer.validate": lambda i: {"cuis": [str(cuis[i % len(cuis)])]},
        "pdf.render": lambda i: {"html": f"<h1>Factură {i}</h1><p>119,00 RON</p>"},
    }
    if "ocr.extract" in types:
        scan = client.upload(_ocr_image(), "image/png", "scan.png").id
        built["ocr.extract"] = lambda i: {"artifact_id": scan}
    if "saft.generate" in types:
        saft = _saft_inputs(client)
        built["saft.generate"] = lambda i: saft
    return {t: built[t] for t in types}


# -- measuring --------------------------------------------------------------------------------


@dataclass
class TypeRun:
    """One type in one phase."""

    task: str
    ids: list[str] = field(default_factory=list)
    refused: int = 0
    jobs: list[dict[str, Any]] = field(default_factory=list)

    def latencies_s(self) -> list[float]:
        return [_ts(j["finished_at"]) - _ts(j["created_at"])
                for j in self.jobs if j["status"] == "succeeded"]

    def failures(self) -> int:
        """Accepted but not succeeded (failed, dead, or unfinished at the deadline)."""
        return len(self.ids) - sum(int(j["status"] == "succeeded") for j in self.jobs)

    def throughput(self) -> float:
        done = [j for j in self.jobs if j["status"] == "succeeded"]
        if not done:
            return 0.0
        span = max(_ts(j["finished_at"]) for j in done) - min(_ts(j["created_at"]) for j in done)
        return len(done) / span if span > 0 else float(len(done))


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _pct(values: list[float], q: int) -> str:
    if len(values) < 2:
        return "-" if not values else f"{1000 * values[0]:,.0f}"
    return f"{1000 * statistics.quantiles(values, n=100, method='inclusive')[q - 1]:,.0f}"


class ReplicaWatch(threading.Thread):
    """Samples each queue's replica count from ``GET /v1/queues`` once a second."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seen: dict[str, tuple[int, int]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self.stop.wait(1.0):
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    resp = http.get("/v1/queues")
                    if resp.status_code != 200:  # overloaded (429) or Redis away (503)
                        continue
                    for q in resp.json():
                        lo, hi = self.seen.get(q["queue"], (q["replicas"], q["replicas"]))
                        self.seen[q["queue"]] = (min(lo, q["replicas"]), max(hi, q["replicas"]))

    def range_of(self, queue: str) -> str:
        lo, hi = self.seen.get(queue, (0, 0))
        return f"{lo}..{hi}" + (" (scaled)" if hi > lo else "")


async def _submit(http: httpx.AsyncClient, run: TypeRun, payload: dict[str, Any]) -> None:
    try:
        resp = await http.post("/v1/jobs", json={"task": run.task, "payload": payload})
    except httpx.HTTPError:
        run.refused += 1
        return
    if resp.status_code == 202:
        run.ids.append(resp.json()["id"])
    else:
        run.refused += 1


async def _collect(http: httpx.AsyncClient, runs: list[TypeRun], timeout_s: float) -> None:
    """Every job's final state (or its last one at the deadline), long-polling each."""
    deadline = time.monotonic() + timeout_s
    gate = asyncio.Semaphore(32)

    async def final(job_id: str) -> dict[str, Any]:
        async with gate:
            while True:
                wait = max(0.0, min(10.0, deadline - time.monotonic()))
                job: dict[str, Any] = (await http.get(
                    f"/v1/jobs/{job_id}", params={"wait": wait}, timeout=wait + 30)).json()
                if job["status"] in TERMINAL or time.monotonic() >= deadline:
                    return job

    for run in runs:
        run.jobs = list(await asyncio.gather(*(final(i) for i in run.ids)))


async def burst(url: str, makers: dict[str, Any], n: int, timeout_s: float) -> list[TypeRun]:
    runs = [TypeRun(t) for t in makers]
    limits = httpx.Limits(max_connections=128)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        await asyncio.gather(*(_submit(http, run, makers[run.task](i))
                               for i in range(n) for run in runs))
        await _collect(http, runs, timeout_s)
    return runs


async def sustained(url: str, makers: dict[str, Any], rate: float, duration_s: float,
                    timeout_s: float) -> list[TypeRun]:
    runs = [TypeRun(t) for t in makers]
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        start, sent, pending = time.monotonic(), 0, set()
        while (elapsed := time.monotonic() - start) < duration_s:
            while sent < int(elapsed * rate) + 1:
                for run in runs:
                    pending.add(asyncio.ensure_future(_submit(http, run, makers[run.task](sent))))
                sent += 1
            await asyncio.sleep(min(0.05, 1 / rate))
        await asyncio.gather(*pending)
        await _collect(http, runs, timeout_s)
    return runs


def table(phase: str, runs: list[TypeRun], watch: ReplicaWatch) -> str:
    lines = [f"### {phase}", "",
             "| type | sent | refused (429/503) | p50 ms | p95 ms | p99 ms | jobs/s "
             "| failed of accepted | replicas |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for run in runs:
        lat, accepted = run.latencies_s(), len(run.ids)
        lines.append(f"| {run.task} | {accepted + run.refused} | {run.refused} | "
                     f"{_pct(lat, 50)} | {_pct(lat, 95)} | {_pct(lat, 99)} | "
                     f"{run.throughput():.1f} | "
                     f"{run.failures()} ({100 * run.failures() / max(accepted, 1):.1f} %) | "
                     f"{watch.range_of(QUEUES[run.task])} |")
    return "\n".join([*lines, ""])


# -- the local stack --------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def local_stack(types: list[str]) -> Iterator[tuple[str, list[int]]]:
    """Redis, SMTP, the Slack and ANAF sandboxes, Ray + Serve and the platform, on loopback."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from aiosmtpd.controller import Controller
    from ray import serve

    from workers_core.deployments.app import build_platform
    from workers_core.sandbox.anaf import AnafSandbox, company
    from workers_core.sandbox.slack import SlackSandbox

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="load-")))
        server = RedisServer(tmp / "redis", _free_port())
        server.start()
        stack.callback(server.stop)
        smtp = Controller(Sink(), hostname="127.0.0.1", port=_free_port())
        smtp.start()
        stack.callback(smtp.stop)
        slack = stack.enter_context(SlackSandbox())
        anaf = stack.enter_context(AnafSandbox())
        cuis = [with_check_digit(20_000_000 + i) for i in range(5)]
        for cui in cuis:
            anaf.state.companies[cui] = company(cui, f"LOAD {cui} SRL")
        queues = sorted({QUEUES[t] for t in types})
        settings = Settings(
            _env_file=None,
            redis_url=server.url, redis_prefix="load", enabled_queues=queues,
            queues={q: QueueOverrides(min_replicas=1, max_replicas=3, target_backlog=20,
                                      scale_down_cooldown_s=30)
                    for q in queues if q in AUTOSCALED},
            shutdown_grace_s=2.0, log_level="WARNING",
            smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_tls="none",
            smtp_from="facturi@firma.ro",
            slack_api_url=slack.api_url, slack_bot_token=slack.token,
            slack_default_channel="#facturi",
            anaf_public_url=anaf.url, anaf_api_url=anaf.url, anaf_oauth_url=anaf.url,
            anaf_timeout_s=10.0,
        )
        port = _free_port()
        ray.init(address="local", num_cpus=8, include_dashboard=False, log_to_driver=False,
                 namespace=f"load-{os.getpid()}")
        stack.callback(ray.shutdown)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        stack.callback(serve.shutdown)
        serve.run(build_platform(settings), name="workers", route_prefix="/")
        yield f"http://127.0.0.1:{port}", cuis


def wait_ready(url: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        time.sleep(0.5)
    raise SystemExit(f"{url} did not become ready in {timeout_s:.0f} s")


def run(url: str, args: argparse.Namespace, cuis: list[int]) -> str:
    wait_ready(url)
    types = args.types.split(",")
    with WorkersClient(url, timeout_s=60) as client:
        makers = payloads(types, client, cuis)
        if "taxpayer.validate" in types:  # fill the cache: one paced lookup per CUI
            for cui in cuis:
                client.wait(client.submit("taxpayer.validate", {"cuis": [str(cui)]}).id,
                            timeout=120)
    watch = ReplicaWatch(url)
    watch.start()
    _log(f"burst: {args.burst} jobs to each of {len(types)} types")
    started = time.monotonic()
    first = asyncio.run(burst(url, makers, args.burst, args.timeout))
    burst_s = time.monotonic() - started
    _log(f"sustained: {args.rate}/s per type for {args.duration:.0f} s")
    second = asyncio.run(sustained(url, makers, args.rate, args.duration, args.timeout))
    watch.stop.set()
    return "\n".join([
        f"`bench/load.py --burst {args.burst} --rate {args.rate} --duration {args.duration:g}`"
        f" on {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}; burst took "
        f"{burst_s:.0f} s.", "",
        table(f"burst: {args.burst} jobs per type at once", first, watch),
        table(f"sustained: {args.rate}/s per type for {args.duration:g} s", second, watch),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running platform (default: start one here)")
    parser.add_argument("--types", default=",".join(TYPES), help="comma-separated task names")
    parser.add_argument("--burst", type=int, default=100, help="jobs per type in the burst")
    parser.add_argument("--rate", type=float, default=1.0, help="jobs/s per type, sustained")
    parser.add_argument("--duration", type=float, default=30.0, help="sustained seconds")
    parser.add_argument("--timeout", type=float, default=300.0, help="wait per phase, s")
    parser.add_argument("--out", type=Path, help="also write the tables to this file")
    args = parser.parse_args()
    unknown = set(args.types.split(",")) - set(TYPES)
    if unknown:
        parser.error(f"unknown types {sorted(unknown)}; known: {', '.join(TYPES)}")
    if args.url:
        report = run(args.url.rstrip("/"), args, [18547290])  # the sandbox's own company
    else:
        with local_stack(args.types.split(",")) as (url, cuis):
            report = run(url, args, cuis)
    print(report)
    if args.out:
        args.out.write_text(report + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
