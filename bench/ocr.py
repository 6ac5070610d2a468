"""OCR pages/s through the ocr.extract task against RapidOCR called directly, same pages.

    .venv/bin/python bench/ocr.py [--rounds 2] [--cpus 1]
    .venv/bin/python bench/ocr.py --replicas-scenario [--shapes 1x1,2x1,1x2] [--jobs 12]

The first (the default) calls the task in this process; ``--replicas-scenario`` sends jobs
through the platform on a private Ray instead, one pool shape after another (see
``bench/_ocr_replicas.py``).

One process, one run, side by side, interleaved page by page so that load from other
processes on the machine hits both sides alike:

- ``rapidocr direct``  ``RapidOCR(params)(pil_image)`` with the task's configuration
                       (shipped PP-OCRv6 small models, no classifier, same ORT threads);
                       the page is already decoded: the floor.
- ``task, PNG/page``   ``OcrExtract.run`` on one PNG artifact per page, through the real
                       Redis artifact store: fetch, sniff, decode, OCR in a worker thread,
                       normalise, reading order, result model.
- ``task, PDF/job``    one multi-page PDF per job: adds PDFium rasterisation per page.

The overhead target is ≤ 10 % (task vs direct). On a shared machine one identical OCR call
varies by ±20 % from one call to the next, which swamps that in the wall-clock columns; the
"not OCR" column (time in the job outside the engine call, measured in the same job through
the ``OcrEngine`` seam) is the overhead itself, free of that noise.

Pages are the synthetic invoice pages of the tests (tests/unit/ocr_pages.py), drawn at
150 DPI. Bounded: 3 x rounds x 4 page-OCRs (~1-2 min on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.unit.ocr_pages

from PIL import Image  # noqa: E402
from rapidocr import RapidOCR  # noqa: E402

from tests.unit import ocr_pages  # noqa: E402
from workers_core.artifacts import ArtifactStore, artifact_store_from_settings  # noqa: E402
from workers_core.config import QueueOverrides, Settings  # noqa: E402
from workers_core.local.redis_server import RedisServer  # noqa: E402
from workers_core.logs import configure_logging  # noqa: E402
from workers_core.ocr.engine import (  # noqa: E402
    OcrEngine,
    RecognisedLine,
    onnx_threads,
    usable_cpus,
)
from workers_core.ocr.rapid import MODEL_FILES, MODELS_DIR  # noqa: E402
from workers_core.tasks.base import JobContext  # noqa: E402
from workers_core.tasks.ocr import OcrExtract, OcrPayload  # noqa: E402

PAGES = [
    ocr_pages.INVOICE,
    ocr_pages.SECOND_PAGE,
    ocr_pages.INVOICE[::-1],
    ocr_pages.short_page("4"),
]
DIRECT, PNG, PDF = "rapidocr direct", "task, PNG/page", "task, PDF/job"


@dataclass
class Tally:
    pages: int = 0
    seconds: float = 0.0
    engine_s: float = 0.0  # of which inside the engine's recognise()
    ratios: list[float] = field(default_factory=list)  # vs direct on the same pages, same round


class TimedEngine:
    """Wraps the task's engine (the ``OcrEngine`` seam) to split OCR time from the rest."""

    def __init__(self, inner: OcrEngine) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds = 0.0

    def recognise(self, image: Image.Image) -> list[RecognisedLine]:
        started = time.perf_counter()
        try:
            return self.inner.recognise(image)
        finally:
            self.seconds += time.perf_counter() - started

    def describe(self) -> dict[str, str]:
        return self.inner.describe()


def direct_engine(threads: int) -> RapidOCR:
    """RapidOCR configured as the task configures it (workers_core/ocr/rapid.py)."""
    return RapidOCR(params=direct_params(threads))


def direct_params(threads: int) -> dict[str, Any]:
    params: dict[str, Any] = {
        f"{k}.model_path": str(MODELS_DIR / f) for k, f in MODEL_FILES.items()
    }
    params.update(
        {
            "Global.use_cls": False,
            "Global.text_score": 0.0,
            "Global.log_level": "error",
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )
    return params


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def context(settings: Settings, artifacts: ArtifactStore) -> JobContext:
    """A job's context over one shared artifact store (opened once, as a replica does)."""
    return JobContext(
        job_id=f"bench-{uuid.uuid4().hex[:8]}",
        task="ocr.extract",
        queue="ocr",
        attempt=1,
        max_attempts=1,
        correlation_id=None,
        settings=settings,
        artifacts=artifacts,
    )


async def bench(settings: Settings, rounds: int, threads: int) -> dict[str, Tally]:
    images = [ocr_pages.render(rows) for rows in PAGES]
    task = OcrExtract(settings)
    await task.setup()
    timed_engine = TimedEngine(task.engine)
    task.engine = timed_engine
    direct = direct_engine(threads)
    direct(images[0])  # warm-up, as setup() warms the task's engine
    ctx = context(settings, artifact_store_from_settings(settings))
    png_ids = [(await ctx.artifacts.put(ocr_pages.png(im), "image/png")).id for im in images]
    pdf_id = (await ctx.artifacts.put(ocr_pages.pdf(images), "application/pdf")).id

    paths = {DIRECT: Tally(), PNG: Tally(), PDF: Tally()}

    async def through_task(path: Tally, artifact_id: str) -> float:
        engine_before, started = timed_engine.seconds, time.perf_counter()
        result = await task.run(OcrPayload(artifact_id=artifact_id),
                                context(settings, ctx.artifacts))
        seconds = time.perf_counter() - started
        path.pages += len(result.pages)
        path.seconds += seconds
        path.engine_s += timed_engine.seconds - engine_before
        return seconds

    for _ in range(rounds):
        direct_round = 0.0
        for image, artifact_id in zip(images, png_ids, strict=True):
            started = time.perf_counter()
            direct(image)
            direct_s = time.perf_counter() - started
            paths[DIRECT].pages += 1
            paths[DIRECT].seconds += direct_s
            paths[DIRECT].engine_s += direct_s
            direct_round += direct_s
            paths[PNG].ratios.append(await through_task(paths[PNG], artifact_id) / direct_s)
        paths[PDF].ratios.append(await through_task(paths[PDF], pdf_id) / direct_round)
    await task.close()
    return paths


def report(paths: dict[str, Tally], threads: int) -> str:
    base = paths[DIRECT]
    base_rate = base.pages / base.seconds
    lines = [
        f"OCR bench: {platform.machine()}, {usable_cpus()} usable CPUs, "
        f"load avg {os.getloadavg()[0]:.2f}, ORT intra-op threads {threads}, "
        f"{len(PAGES)} distinct pages (1500 px wide, 150 DPI)",
        "",
        "| path             | pages | seconds | pages/s | vs direct | median paired | not OCR |",
        "|------------------|-------|---------|---------|-----------|---------------|---------|",
    ]
    for name, p in paths.items():
        rate = p.pages / p.seconds
        paired = f"{statistics.median(p.ratios):.3f}x" if p.ratios else "-"
        other_ms = (p.seconds - p.engine_s) / p.pages * 1000
        lines.append(
            f"| {name:<16} | {p.pages:>5} | {p.seconds:>7.2f} | {rate:>7.3f} | "
            f"{rate / base_rate:>8.3f}x | {paired:>13} | {other_ms:>4.0f} ms |"
        )
    png = paths[PNG]
    by_totals = png.seconds / png.pages / (base.seconds / base.pages) - 1
    by_pairs = statistics.median(png.ratios) - 1
    outside = (png.seconds - png.engine_s) / png.engine_s
    lines += [
        "",
        "vs direct: pages/s ratio (>1 = faster). median paired: task time / direct time on the "
        "same pages in the same round (<1 = faster). not OCR: time per page outside the "
        "engine call (fetch, decode, rasterise, ordering, models).",
        f"task overhead (PNG/page): {by_totals:+.1%} by totals, {by_pairs:+.1%} by median pair, "
        f"{outside:+.1%} outside the engine; target <= +10%",
    ]
    return "\n".join(lines)


def through_ray(settings: Settings, args: argparse.Namespace) -> str:
    """``--replicas-scenario``: every shape through the platform, then RapidOCR directly."""
    from bench import _ocr_replicas as replicas

    shapes = [replicas.Shape.parse(s) for s in args.shapes.split(",")]
    if too_big := [s for s in shapes if s.replicas * s.cpus > args.ray_cpus]:
        raise SystemExit(f"{too_big[0]} does not fit in --ray-cpus {args.ray_cpus}")
    images = [ocr_pages.render(rows) for rows in PAGES]
    load_before, started = os.getloadavg()[0], time.perf_counter()
    results = replicas.measure(settings, shapes, args.ray_cpus, images, args.jobs,
                               direct_params(threads=1))
    return replicas.report(results, len(images), (load_before, os.getloadavg()[0]),
                           time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="passes over the pages")
    parser.add_argument(
        "--cpus",
        type=float,
        default=1,
        help="replica CPUs (sets WORKERS_QUEUES ocr num_cpus; ORT threads)",
    )
    parser.add_argument("--replicas-scenario", action="store_true",
                        help="jobs through the platform on a private Ray, per pool shape")
    parser.add_argument("--shapes", default="1x1,2x1",
                        help="pool shapes for --replicas-scenario: REPLICASxCPUS, comma-separated")
    parser.add_argument("--jobs", type=int, default=12,
                        help="jobs (pages) per shape for --replicas-scenario")
    parser.add_argument("--ray-cpus", type=int, default=usable_cpus(),
                        help="CPUs Ray may hand out for --replicas-scenario")
    args = parser.parse_args()
    configure_logging("WARNING", json=False)
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), free_port())
        server.start()
        try:
            settings = Settings(
                _env_file=None,
                redis_url=server.url,
                redis_prefix="benchocr",
                ocr_dpi=ocr_pages.DPI,
                queues={"ocr": QueueOverrides(num_cpus=args.cpus)},
            )
            if args.replicas_scenario:
                text = through_ray(settings, args)
            else:
                threads = onnx_threads(args.cpus, usable_cpus())
                text = report(asyncio.run(bench(settings, args.rounds, threads)), threads)
        finally:
            server.stop()
    print(text)


if __name__ == "__main__":
    main()
