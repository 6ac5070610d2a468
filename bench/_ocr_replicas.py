"""``bench/ocr.py --replicas-scenario``: OCR jobs through the platform on a private Ray.

For each pool shape (replicas x CPUs per replica; default 1x1 then 2x1) the platform is
deployed with only the ``ocr`` queue, N ``ocr.extract`` jobs (one PNG page each, uploaded
once) are submitted in one batch and timed from the submission to the last ``finished_at``;
then RapidOCR is called directly on the same N pages with the same parallelism (as many
processes as replicas, as many ORT threads as CPUs each), the baseline.

Why 1 CPU per replica: it is the task's own declaration (``Resources(num_cpus=1)``,
concurrency 1), so a replica runs one page at a time with one ORT intra-op thread; two of
them fill the 2 cores. Ray gets ``num_cpus`` = the usable cores so that the shapes are what
the machine holds, and the gateway reserves none (it only takes the one batch request).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier
from typing import Any

import httpx
import redis
from PIL import Image

from bench._cpu import CpuMeter
from bench.throughput import PLATFORM_APP, deploy_platform, free_port, ray_and_serve
from tests.unit import ocr_pages
from workers_core.artifacts import artifact_store_from_settings
from workers_core.config import QueueOverrides, Settings

TERMINAL = {b"succeeded", b"failed", b"dead", b"cancelled"}


@dataclass(frozen=True)
class Shape:
    """An ``ocr`` pool: ``replicas`` replicas of ``cpus`` CPUs (= ORT threads) each."""

    replicas: int
    cpus: int

    @classmethod
    def parse(cls, text: str) -> Shape:
        replicas, _, cpus = text.partition("x")
        return cls(int(replicas), int(cpus or 1))

    def __str__(self) -> str:
        return f"{self.replicas} replica{'s' if self.replicas > 1 else ''} x {self.cpus} CPU"


@dataclass
class Run:
    """N pages one way: wall time, CPU time of the process tree, time per page."""

    pages: int
    seconds: float
    cpu_s: float
    page_s: list[float] = field(default_factory=list)  # engine call (direct), job (platform)
    idle_cores: float = 0.0  # CPU/s of the process tree with no work: platform up, or Ray only

    @property
    def rate(self) -> float:
        return self.pages / self.seconds


# -- RapidOCR directly, in worker processes -------------------------------------------------

_engine: Any = None
_images: list[Image.Image] = []


def _load(params: dict[str, Any], images: list[Image.Image], barrier: Barrier) -> None:
    """Worker start: build the engine, warm it up, wait until every worker has."""
    global _engine, _images
    from rapidocr import RapidOCR

    _engine, _images = RapidOCR(params=params), images
    _engine(images[0])
    barrier.wait()


def _ready() -> None:
    """Nothing: submitted once per worker so that each one starts (and warms up) first."""


def _ocr(index: int) -> float:
    started = time.perf_counter()
    _engine(_images[index])
    return time.perf_counter() - started


def run_direct(shape: Shape, params: dict[str, Any], images: list[Image.Image],
               indices: list[int], meter: CpuMeter) -> Run:
    """The pages through RapidOCR in ``shape.replicas`` processes, ``shape.cpus`` threads each.
    Spawned, not forked (this process runs Ray's threads), with ``OMP_NUM_THREADS`` as Ray
    sets it in a replica (the CPUs it reserved)."""
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(shape.replicas, timeout=300)  # a worker that failed to start
    threads = {**params, "EngineConfig.onnxruntime.intra_op_num_threads": shape.cpus}
    omp = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(shape.cpus)  # read by the workers as they start
    try:
        with ProcessPoolExecutor(shape.replicas, mp_context=spawn, initializer=_load,
                                 initargs=(threads, images, barrier)) as pool:
            for started in [pool.submit(_ready) for _ in range(shape.replicas)]:
                started.result()
            cpu, wall = meter.sample(), time.perf_counter()
            page_s = list(pool.map(_ocr, indices))
            return Run(len(indices), time.perf_counter() - wall, meter.sample() - cpu, page_s)
    finally:
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp


# -- the platform -----------------------------------------------------------------------------


@contextlib.contextmanager
def ray_platform(ray_cpus: int) -> Iterator[str]:
    """A private local Ray with Serve on a free port; yields the base URL."""
    port = free_port()
    with ray_and_serve(port, ray_cpus):
        yield f"http://127.0.0.1:{port}"


def settings_for(base: Settings, shape: Shape) -> Settings:
    return base.model_copy(update={
        "enabled_queues": ["ocr"],
        "queues": {"ocr": QueueOverrides(replicas=shape.replicas, num_cpus=shape.cpus)},
        "gateway_num_cpus": 0.0,
        "shutdown_grace_s": 2.0,
        "log_level": "WARNING",
    })


def run_platform(settings: Settings, base_url: str, artifact_ids: list[str],
                 meter: CpuMeter, timeout_s: float) -> Run:
    """One batch of ``ocr.extract`` jobs; done when every job hash has a terminal status."""
    jobs = [{"task": "ocr.extract", "payload": {"artifact_id": a}} for a in artifact_ids]
    r = redis.Redis.from_url(settings.redis_url)
    cpu, t0 = meter.sample(), time.time()
    reply = httpx.post(f"{base_url}/v1/jobs:batch", json={"jobs": jobs}, timeout=60)
    reply.raise_for_status()
    ids = [j["id"] for j in reply.json()["jobs"]]
    keys = [f"{settings.redis_prefix}:job:{i}" for i in ids]
    deadline = time.monotonic() + timeout_s
    while True:
        pipe = r.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, "status", "started_at", "finished_at")
        rows = pipe.execute()
        if all(status in TERMINAL for status, _, _ in rows):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"OCR jobs unfinished after {timeout_s:.0f} s")
        time.sleep(0.1)
    cpu_s = meter.sample() - cpu
    r.close()
    if failed := [s for s, _, _ in rows if s != b"succeeded"]:
        raise RuntimeError(f"{len(failed)} OCR jobs did not succeed (e.g. {failed[0]!r})")
    finished = [float(f) for _, _, f in rows]
    return Run(len(ids), max(finished) - t0, cpu_s,
               [float(f) - float(s) for _, s, f in rows])


async def upload(settings: Settings, images: list[Image.Image]) -> list[str]:
    store = artifact_store_from_settings(settings)
    return [(await store.put(ocr_pages.png(im), "image/png")).id for im in images]


def measure(settings: Settings, shapes: list[Shape], ray_cpus: int, images: list[Image.Image],
            jobs: int, params: dict[str, Any]) -> dict[Shape, tuple[Run, Run]]:
    """(platform, direct) for each shape, in turn; the pool is removed before the direct run."""
    from ray import serve

    indices = [n % len(images) for n in range(jobs)]
    results: dict[Shape, tuple[Run, Run]] = {}
    meter = CpuMeter()
    try:
        with ray_platform(ray_cpus) as base_url:
            ids = asyncio.run(upload(settings, images))
            for shape in shapes:
                _log(f"deploying the ocr pool at {shape}")
                shaped = settings_for(settings, shape)
                deploy_platform(shaped, base_url)
                _log("deployed; warm-up, platform run, direct run")
                # One real page per replica first, as the direct workers get: a replica's
                # set-up OCRs only a small probe, and the first page of a new size costs more.
                run_platform(shaped, base_url, ids[:1] * shape.replicas, meter, timeout_s=300)
                on_platform = run_platform(shaped, base_url, [ids[i] for i in indices], meter,
                                           timeout_s=900)
                on_platform.idle_cores = idle_cores(meter)
                serve.delete(PLATFORM_APP)
                direct = run_direct(shape, params, images, indices, meter)
                direct.idle_cores = idle_cores(meter)
                results[shape] = (on_platform, direct)
    finally:
        meter.close()
    return results


def idle_cores(meter: CpuMeter, seconds: float = 5.0) -> float:
    """What the process tree burns doing nothing: the price of what is up besides the work."""
    cpu = meter.sample()
    time.sleep(seconds)
    return (meter.sample() - cpu) / seconds


def _log(message: str) -> None:
    print(f"[ocr bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the report -------------------------------------------------------------------------------


def report(results: dict[Shape, tuple[Run, Run]], distinct: int, load: tuple[float, float],
           took_s: float) -> str:
    lines = [
        f"OCR through Ray: {platform.machine()}, {len(os.sched_getaffinity(0))} usable CPUs, "
        f"load avg {load[0]:.2f} before / {load[1]:.2f} after, {took_s:.0f} s in all; "
        f"{distinct} distinct pages (1500 px wide, 150 DPI), one PNG page per job",
        "",
        "| pool | platform pages/s | direct pages/s | platform / direct | s per page (job, "
        "median) | s per page (direct, median) | CPU s/page platform | CPU s/page direct "
        "| idle cores platform | idle cores Ray only |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for shape, (plat, direct) in results.items():
        lines.append(
            f"| {shape} | {plat.rate:.3f} | {direct.rate:.3f} | {plat.rate / direct.rate:.3f}x | "
            f"{statistics.median(plat.page_s):.2f} | {statistics.median(direct.page_s):.2f} | "
            f"{plat.cpu_s / plat.pages:.2f} | {direct.cpu_s / direct.pages:.2f} | "
            f"{plat.idle_cores:.3f} | {direct.idle_cores:.3f} |")
    one, two = Shape(1, 1), Shape(2, 1)
    if one in results and two in results:
        (p1, d1), (p2, d2) = results[one], results[two]
        lines += ["", f"2 replicas vs 1 (1 CPU each): {p2.rate / p1.rate:.2f}x pages/s through "
                      f"the platform; {d2.rate / d1.rate:.2f}x for RapidOCR directly in 2 "
                      "processes vs 1"]
    lines += [
        "",
        "platform: N jobs in one POST /v1/jobs:batch, submission to the last finished_at; a "
        "job's time is its started_at -> finished_at (fetch, decode, OCR, result). direct: "
        "the same pages, RapidOCR in as many spawned processes as replicas, ORT threads = "
        "CPUs, engine call only. CPU: the whole process tree (Ray's daemons on both sides). "
        "idle cores: CPU seconds per second over 5 s with nothing to do, after the platform "
        "run (pool, gateway, Serve and Ray up) and after the direct run (Ray only).",
    ]
    return "\n".join(lines)
