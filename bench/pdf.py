"""PDF renders/s: the pdf.render task (warm browser) against a browser launched per render.

    .venv/bin/python bench/pdf.py [--rounds 2] [--warm 10] [--naive 4] [--concurrency 3]

One process, one run, the same invoice HTML (tests/unit/test_pdf_render.py), side by side
in alternating blocks so that load from other processes hits both sides alike:

- ``naive, launch/render``  what a first version does: ``chromium.launch()``, ``new_page``,
                            ``set_content``, ``pdf``, ``close`` for every document (same
                            binary and flags; Playwright's driver is kept running, and there is
                            no interception, no artifact store: the cheapest naive path). The
                            ratio the target is about.
- ``naive, +driver/render`` the same inside ``async with async_playwright()`` per document,
                            as a request handler often does it (starts Playwright's Node
                            driver every time too).
- ``task, sequential``      ``RenderPdf.run`` one job at a time: warm browser, fresh context
                            per job, guarded routing, the PDF stored in Redis, pages counted.
- ``task, N in flight``     the same with the task's concurrency (N jobs at once), as a
                            replica runs them.

Target: the task renders ≥ 5x as many PDFs per second as the naive way. Wall-clock rates
swing with whatever else the machine runs, so the CPU seconds each render costs (this
process and all its descendants: Playwright's driver, Chromium, redis-server) are
reported too: they depend far less on load, and on a busy machine throughput is CPU per
render (see ``CpuMeter``). Bounded: no new round after --budget-s (default 90 s).
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
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.unit.test_pdf_render

from playwright.async_api import Playwright, async_playwright  # noqa: E402

from tests.unit.test_pdf_render import INVOICE  # noqa: E402
from workers_core.artifacts import ArtifactStore, artifact_store_from_settings  # noqa: E402
from workers_core.config import Settings  # noqa: E402
from workers_core.integrations.chromium import find_chromium, launch_args  # noqa: E402
from workers_core.local.redis_server import RedisServer  # noqa: E402
from workers_core.logs import configure_logging  # noqa: E402
from workers_core.tasks.base import JobContext  # noqa: E402
from workers_core.tasks.pdf import PdfPayload, RenderPdf  # noqa: E402

NAIVE, NAIVE_DRIVER = "naive, launch/render", "naive, +driver/render"
SEQUENTIAL = "task, sequential"


@dataclass
class Tally:
    renders: int = 0
    seconds: float = 0.0  # wall time of the blocks
    cpu_s: float = 0.0  # CPU time of the process tree during the blocks
    latencies: list[float] = field(default_factory=list)


class CpuMeter:
    """CPU seconds used by this process and all its descendants (Linux ``/proc``).

    A thread samples every process under this one every 20 ms and keeps each one's last
    user + system time, so processes that exit are still counted (their parents' ``cutime``
    is not enough: Chromium's renderers are not always reaped by a process we see). What a
    process does in its last < 20 ms is lost; the sampler's own CPU is subtracted.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[int, str], int] = {}  # (pid, start time) -> utime + stime
        self._own_s = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.sample()

    def sample(self) -> float:
        stats: dict[int, list[str]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        stats[int(entry)] = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
        children: dict[int, list[int]] = {}
        for pid, fields in stats.items():
            children.setdefault(int(fields[1]), []).append(pid)
        with self._lock:
            todo = [os.getpid()]
            while todo:
                pid = todo.pop()
                if pid in stats:  # fields 14, 15 and 22 of /proc/pid/stat
                    fields = stats[pid]
                    self._seen[(pid, fields[19])] = int(fields[11]) + int(fields[12])
                todo.extend(children.get(pid, []))
            if threading.current_thread() is self._thread:
                self._own_s = time.thread_time()
            return sum(self._seen.values()) / os.sysconf("SC_CLK_TCK") - self._own_s

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class Measured:
    """Adds a block's wall and CPU time to a tally."""

    def __init__(self, meter: CpuMeter, tally: Tally, renders: int) -> None:
        self.meter, self.tally, self.renders = meter, tally, renders

    def __enter__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), self.meter.sample()

    def __exit__(self, *exc: object) -> None:
        self.tally.seconds += time.perf_counter() - self.wall
        self.tally.cpu_s += self.meter.sample() - self.cpu
        self.tally.renders += self.renders


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def context(settings: Settings, artifacts: ArtifactStore) -> JobContext:
    """A job's context over one shared artifact store (opened once, as a replica does)."""
    return JobContext(job_id=f"bench-{uuid.uuid4().hex[:8]}", task="pdf.render",
                      queue="pdf.render", attempt=1, max_attempts=1, correlation_id=None,
                      settings=settings, artifacts=artifacts)


async def naive_render(p: Playwright, executable: Path) -> None:
    browser = await p.chromium.launch(executable_path=executable, args=launch_args())
    page = await browser.new_page()
    await page.set_content(INVOICE)
    pdf = await page.pdf(format="A4")
    await browser.close()
    assert pdf.startswith(b"%PDF-")


async def naive_block(meter: CpuMeter, executable: Path, renders: int, tally: Tally,
                      driver_per_render: bool) -> None:
    async with async_playwright() as kept:
        with Measured(meter, tally, renders):
            for _ in range(renders):
                one = time.perf_counter()
                if driver_per_render:
                    async with async_playwright() as p:
                        await naive_render(p, executable)
                else:
                    await naive_render(kept, executable)
                tally.latencies.append(time.perf_counter() - one)


async def task_block(meter: CpuMeter, task: RenderPdf, renders: int, in_flight: int,
                     tally: Tally) -> None:
    payload = PdfPayload(html=INVOICE)
    slots = asyncio.Semaphore(in_flight)
    artifacts = artifact_store_from_settings(task.settings)

    async def one() -> None:
        async with slots:
            started = time.perf_counter()
            result = await task.run(payload, context(task.settings, artifacts))
            assert result.pages == 1
            tally.latencies.append(time.perf_counter() - started)

    with Measured(meter, tally, renders):
        await asyncio.gather(*(one() for _ in range(renders)))


async def bench(settings: Settings, args: argparse.Namespace) -> dict[str, Tally]:
    concurrent = f"task, {args.concurrency} in flight"
    paths = {NAIVE: Tally(), NAIVE_DRIVER: Tally(), SEQUENTIAL: Tally(), concurrent: Tally()}
    task = RenderPdf(settings)
    await task.setup()
    executable = find_chromium(settings.pdf_chromium_path)
    meter = CpuMeter()
    await task_block(meter, task, 2, 1, Tally())  # warm-up: first context, first spare
    started = time.perf_counter()
    for _ in range(args.rounds):
        await task_block(meter, task, args.warm, 1, paths[SEQUENTIAL])
        await naive_block(meter, executable, args.naive, paths[NAIVE], driver_per_render=False)
        await naive_block(meter, executable, args.naive // 2 or 1, paths[NAIVE_DRIVER],
                          driver_per_render=True)
        await task_block(meter, task, args.warm, args.concurrency, paths[concurrent])
        if time.perf_counter() - started > args.budget_s:
            break
    meter.close()
    await task.close()
    return paths


def report(paths: dict[str, Tally], chromium: str, load_before: float) -> str:
    naive = paths[NAIVE]
    naive_rate, naive_cpu = naive.renders / naive.seconds, naive.cpu_s / naive.renders
    lines = [
        f"PDF bench: {platform.machine()}, {os.cpu_count()} CPUs, load avg {load_before:.2f} "
        f"before / {os.getloadavg()[0]:.2f} after, {chromium}; same 1-page invoice HTML",
        "",
        "| path                   | renders | seconds | renders/s | vs naive | median latency "
        "| CPU s/render | vs naive |",
        "|------------------------|---------|---------|-----------|----------|----------------"
        "|--------------|----------|",
    ]
    for name, t in paths.items():
        rate, cpu = t.renders / t.seconds, t.cpu_s / t.renders
        lines.append(f"| {name:<22} | {t.renders:>7} | {t.seconds:>7.2f} | {rate:>9.2f} | "
                     f"{rate / naive_rate:>7.2f}x | {statistics.median(t.latencies):>12.3f} s "
                     f"| {cpu:>12.3f} | {naive_cpu / cpu:>7.2f}x |")
    sequential = paths[SEQUENTIAL]
    by_wall = sequential.renders / sequential.seconds / naive_rate
    by_cpu = naive_cpu / (sequential.cpu_s / sequential.renders)
    lines += ["", f"warm task vs naive (launch/render), one at a time: {by_wall:.1f}x renders/s, "
                  f"{by_cpu:.1f}x less CPU per render (target >= 5x)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating blocks per path")
    parser.add_argument("--warm", type=int, default=10, help="task renders per block")
    parser.add_argument("--naive", type=int, default=4, help="naive renders per block")
    parser.add_argument("--concurrency", type=int, default=RenderPdf.concurrency)
    parser.add_argument("--budget-s", type=float, default=90, help="no new round after this")
    args = parser.parse_args()
    configure_logging("WARNING", json=False)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), free_port())
        server.start()
        try:
            settings = Settings(
                _env_file=None, redis_url=server.url, redis_prefix="benchpdf",
            )
            results = asyncio.run(bench(settings, args))
        finally:
            server.stop()
    print(report(results, f"chromium {find_chromium(settings.pdf_chromium_path)}", load_before))


if __name__ == "__main__":
    main()
