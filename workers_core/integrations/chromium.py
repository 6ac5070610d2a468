"""Headless Chromium through Playwright: one warm browser per replica, a fresh context per job.

A context shares nothing with the previous job (cookies, cache, storage) and costs far less
than a launch (Playwright maintainers' advice, playwright#10248), so a replica keeps one
browser and gives every job a context of its own, used once: the next jobs' contexts are
opened ahead ("spares", their routing installed) while the replica is idle, and a job's
context is closed after the job has its PDF, not on its time. Like Gotenberg's
``--chromium-restart-after``, the browser is replaced after N jobs (memory grows) and as soon
as it is found dead; jobs still running on the old one finish before it is closed.

The browser has no network of its own: ``--host-resolver-rules=MAP * ~NOTFOUND`` fails every
host name *and* IP literal, so whatever escapes request interception (a WebSocket, a worker's
request) goes nowhere. Every request a page makes is answered by the caller's ``serve``
function (which decides what is allowed) or blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from workers_core.config import Settings
from workers_core.errors import NonRetryable, WorkersError

if TYPE_CHECKING:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        Page,
        Playwright,
        Route,
        WebSocketRoute,
    )

INSTALL_HINT = "install the pdf extra: pip install 'workers-core[pdf]'"


class ChromiumNotFound(WorkersError):
    """No usable Chromium or Playwright: a deployment problem, found at replica start-up."""

    problem_type = "chromium-not-found"
    retryable = False


class BrowserCrashed(WorkersError):
    """The browser died or would not start: a new one is launched for the next attempt."""

    problem_type = "browser-crashed"


class RenderFailed(NonRetryable):
    """Chromium refused the document or its options (e.g. a page range past the end)."""

    problem_type = "render-failed"


class RenderTimeout(NonRetryable):
    """The document did not load, or its wait condition did not hold, in time."""

    problem_type = "render-timeout"


@dataclass(frozen=True)
class Reply:
    """What ``serve`` answers for one intercepted request."""

    status: int
    headers: Mapping[str, str]
    body: bytes


Serve = Callable[[str, str, Mapping[str, str]], Awaitable[Reply]]
"""``serve(url, method, headers)``: a ``Reply``, or raise to block the request."""


@dataclass(frozen=True)
class RenderRequest:
    """One document to print: ``url`` is loaded through ``serve`` like every sub-resource."""

    url: str
    serve: Serve
    timeout_s: float
    pdf_options: Mapping[str, Any] = field(default_factory=dict)  # ``Page.pdf`` keywords
    javascript: bool = False
    media: Literal["print", "screen"] = "print"
    wait_for_selector: str | None = None
    wait_for_expression: str | None = None


@dataclass
class RenderOutput:
    pdf: bytes
    status: int | None  # of the document's response
    blocked: list[str]  # "url (reason)" of every request that was refused
    elapsed_s: float


# The headless shell first: what Playwright itself runs for headless Chromium. Debian's full
# chromium works too, but its headless mode spends ~1.8 CPU-s on every new browser context
# (renderer start-up) against ~0.15 s for the shell of the same version (measured here).
CANDIDATES = ("chromium-headless-shell", "chromium", "chromium-browser")


def find_chromium(configured: Path | None = None) -> Path:
    """The configured binary, else the first of ``CANDIDATES`` on PATH; never a download."""
    if configured is not None:
        if not (configured.is_file() and os.access(configured, os.X_OK)):
            raise ChromiumNotFound(f"WORKERS_PDF_CHROMIUM_PATH={configured} is not an executable")
        return configured
    for name in CANDIDATES:
        if found := shutil.which(name):
            return Path(found)
    raise ChromiumNotFound("no chromium on PATH: install it (apt-get install "
                           "chromium-headless-shell) or set WORKERS_PDF_CHROMIUM_PATH")


# Chromium keeps only the last --disable-features it is given, so ours repeats Playwright's
# own list (chromiumSwitches.ts, Playwright 1.65), which would otherwise be enabled again.
# tests/unit/test_pdf_render.py checks the launched browser's command line for a name missed.
PLAYWRIGHT_DISABLED_FEATURES = (
    "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable", "LensOverlay", "MediaRouter", "PaintHolding",
    "ThirdPartyStoragePartitioning", "AvoidCorsURLLoaderRestartOnRedirect",
    "TcpPortRandomizationWin", "OptimizationHints", "NetworkTimeServiceQuerying", "AimEnabled",
    "PreconnectToSearch", "msForceBrowserSignIn", "msEdgeUpdateLaunchServicesPreferredVersion",
)
# A new RenderFrame for every navigation (RenderDocument) buys nothing for a page that
# navigates once, and without it a job costs ~10-15 % less CPU (bench/pdf.py --stages).
# (--disable-threaded-compositing saves as much again, but stops requestAnimationFrame, which
# pages and wait_for_expression's polling need.)
DISABLED_FEATURES = (*PLAYWRIGHT_DISABLED_FEATURES, "RenderDocument")


def launch_args() -> list[str]:
    """Flags added to Playwright's own (which already disable extensions, sync, updates)."""
    return [
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no network of its own (module docstring)
        "--disable-gpu",  # servers have none; avoids the GPU process and SwiftShader warm-up
        "--disable-dev-shm-usage",  # containers often give /dev/shm only 64 MB
        "--dns-prefetch-disable",
        "--no-pings",
        "--font-render-hinting=none",  # same glyph metrics on every host (as Gotenberg does)
        "--disable-features=" + ",".join(DISABLED_FEATURES),
    ]


@dataclass(eq=False)
class _Spare:
    """A blank opened ahead of the next job: its renderer process is most of a job's cost."""

    javascript: bool
    task: asyncio.Task[_Blank]


@dataclass(eq=False)
class _Generation:
    """One launched browser and the jobs it has served and is serving."""

    browser: Browser
    jobs: int = 0
    active: int = 0
    spares: list[_Spare] = field(default_factory=list)


@dataclass(eq=False)
class _Blank:
    """A fresh context, its one page and its router: serves one job, then is closed (or,
    with ``reuse_context_jobs``, is wiped and serves up to that many script-free jobs)."""

    context: BrowserContext
    page: Page
    router: _Router
    served: int = 0


class _Router:
    """A context's one route handler, installed before its page exists, so nothing the page
    asks for is ever unrouted. It passes requests to one job, bound once (a context never
    serves a second job unless it was wiped: ``unbind``), and refuses them before that and
    once the job is over (its context is then closed or wiped in the background, and
    ``serve`` is not called after ``render`` returns)."""

    def __init__(self) -> None:
        self.job: _Job | None = None
        self.over = False

    def bind(self, job: _Job) -> None:
        if self.job is not None:
            raise RuntimeError("this browser context has served a job already")
        self.job = job
        self.over = False

    def unbind(self) -> None:
        """After the context was wiped (its cookies cleared): it may serve another job."""
        self.job = None

    async def handle(self, route: Route) -> None:
        from playwright.async_api import Error as PlaywrightError

        if self.job is not None and not self.over:
            await self.job.handle(route)
            return
        with contextlib.suppress(PlaywrightError):  # the page may be gone already
            await route.abort("blockedbyclient")


@dataclass
class _Job:
    """Per-render state shared with the route handler."""

    request: RenderRequest
    blocked: list[str] = field(default_factory=list)
    document_error: Exception | None = None
    stage: str = "opening a page"

    async def handle(self, route: Route) -> None:
        from playwright.async_api import Error as PlaywrightError

        request = route.request
        try:
            reply = await self.request.serve(request.url, request.method, request.headers)
        except Exception as exc:  # every failure blocks the request; the reason is reported
            reason = exc.message if isinstance(exc, WorkersError) else f"{type(exc).__name__}"
            self.blocked.append(f"{request.url[:300]} ({reason[:300]})")
            if (self.document_error is None and request.is_navigation_request()
                    and request.frame.parent_frame is None):
                self.document_error = exc
            with contextlib.suppress(PlaywrightError):  # the page may be gone already
                await route.abort("blockedbyclient")
            return
        with contextlib.suppress(PlaywrightError):
            await route.fulfill(status=reply.status, headers=dict(reply.headers),
                                body=reply.body)


async def _refuse_websocket(ws: WebSocketRoute) -> None:
    await ws.close(code=1008, reason="blocked by the renderer")


class WarmBrowser:
    """One Chromium per replica, restarted after ``restart_after_jobs`` jobs or when dead."""

    def __init__(self, executable: Path, *, restart_after_jobs: int = 200,
                 launch_timeout_s: float = 30.0, spares: int | None = None,
                 reuse_context_jobs: int = 1) -> None:
        self.executable = executable
        self.restart_after_jobs = restart_after_jobs
        # Jobs one context may serve when they run no script (1: a fresh context per job).
        # Between them its cookies are cleared; without scripts a document cannot reach
        # storage, service workers are blocked and routing turns Chromium's HTTP cache off.
        # Left shared: the renderer process and the context's history (a later document's
        # CSS :visited could tell a URL an earlier job loaded), hence opt-in, for jobs of
        # one trusted application. It saves the renderer a new context starts (~1/2 of a
        # job's CPU: bench/pdf.py).
        self.reuse_context_jobs = reuse_context_jobs
        self.reused = 0
        # Contexts opened ahead of jobs. Two let back-to-back jobs find one ready (headless
        # shell: 0.25 → 0.16 s a job); with the full browser, whose renderers cost ~1.2 CPU-s
        # to start, a second one competes with the job itself (0.70 → 0.95 s on 2 cores).
        self.spares = spares if spares is not None else (
            2 if "headless-shell" in executable.name else 1)
        self.launch_timeout_s = launch_timeout_s
        self.launches = 0
        self._playwright: Playwright | None = None
        self._current: _Generation | None = None
        self._open: set[_Generation] = set()
        self._lock = asyncio.Lock()  # one launch at a time, however many jobs run
        self._background: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> WarmBrowser:
        return cls(find_chromium(settings.pdf_chromium_path),
                   restart_after_jobs=settings.pdf_restart_after_jobs,
                   reuse_context_jobs=settings.pdf_reuse_context_jobs)

    @property
    def browser(self) -> Browser | None:
        """The current browser (for diagnostics and tests); ``None`` before ``start``."""
        return self._current.browser if self._current else None

    @property
    def connected(self) -> bool:
        return self._current is not None and self._current.browser.is_connected()

    async def start(self) -> str:
        """Launch now, so a broken install fails the replica's setup; return the version."""
        async with self._lock:
            generation = await self._usable_generation()
        return generation.browser.version

    async def close(self) -> None:
        """Close every browser (jobs still running on them fail) and the Playwright driver."""
        async with self._lock:
            self._current = None
            for generation in list(self._open):
                await self._close_generation(generation)
            if self._background:  # each is bounded (see _blank_page); this is belt and braces
                _, late = await asyncio.wait(self._background, timeout=self.launch_timeout_s)
                for task in late:
                    task.cancel()
            if self._playwright is not None:
                await self._playwright.stop()
                self._playwright = None

    async def render(self, request: RenderRequest, *, counted: bool = True) -> RenderOutput:
        """Print ``request.url`` to PDF in a fresh context; Playwright errors translated.
        ``counted=False`` (the health check's blank page) leaves the restart quota alone."""
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        started = time.perf_counter()
        job = _Job(request)
        generation = await self._acquire(counted)
        try:
            blank = await self._blank(generation, request.javascript)
            blank.router.bind(job)
            printed = False
            try:
                pdf, status = await _print(blank, job)
                printed = True
            finally:  # the job has its PDF: closing the context need not hold it up
                blank.router.over = True
                blank.served += 1
                if printed and self._reusable(generation, blank, request):
                    generation.spares.append(self._wiped_spare(blank))
                else:
                    self._in_background(_close_context(blank.context))
                self._top_up_spares(generation, request.javascript)
        except (TimeoutError, PlaywrightTimeout) as exc:
            raise RenderTimeout(f"rendering took longer than {request.timeout_s:g} s "
                                f"({job.stage})", blocked=job.blocked[:20]) from exc
        except PlaywrightError as exc:
            if not generation.browser.is_connected():
                raise BrowserCrashed(f"chromium died while {job.stage}") from exc
            if job.document_error is not None:
                raise job.document_error from exc  # keeps its own retryability
            message = exc.message.splitlines()[0] if exc.message else type(exc).__name__
            raise RenderFailed(f"chromium failed while {job.stage}: {message}") from exc
        finally:
            await self._release(generation)
        return RenderOutput(pdf, status, job.blocked, time.perf_counter() - started)

    async def _blank(self, generation: _Generation, javascript: bool) -> _Blank:
        """A fresh context and page: a spare opened after an earlier job if one fits. A browser
        that cannot open one in ``launch_timeout_s`` is wedged: it is replaced for the next job."""
        from playwright.async_api import Error as PlaywrightError

        fitting = [s for s in generation.spares if s.javascript == javascript]
        if not fitting:  # the jobs changed kind: these spares would only wait
            for spare in generation.spares:
                self._dispose(spare)
            generation.spares.clear()
        try:
            async with asyncio.timeout(self.launch_timeout_s):
                if fitting:
                    spare = min(fitting, key=lambda s: not s.task.done())  # a ready one first
                    generation.spares.remove(spare)
                    with contextlib.suppress(PlaywrightError):  # e.g. the browser died since
                        return await spare.task
                return await self._blank_page(generation.browser, javascript)
        except TimeoutError:
            generation.jobs = self.restart_after_jobs
            raise BrowserCrashed(f"chromium opened no page in {self.launch_timeout_s:g} s"
                                 ) from None

    def _reusable(self, generation: _Generation, blank: _Blank,
                  request: RenderRequest) -> bool:
        """Only contexts that never ran a script, kept default media and have jobs left."""
        return (blank.served < self.reuse_context_jobs and not request.javascript
                and request.media != "screen" and generation is self._current
                and generation.browser.is_connected()
                and generation.jobs + len(generation.spares) < self.restart_after_jobs)

    def _wiped_spare(self, blank: _Blank) -> _Spare:
        """The job's context, made blank again in the background, as the next job's spare."""
        self.reused += 1
        task = asyncio.create_task(_wipe(blank, self.launch_timeout_s))
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())
        return _Spare(False, task)

    def _top_up_spares(self, generation: _Generation, javascript: bool) -> None:
        """Open contexts for the next jobs now that this one is done. Not while it renders:
        with Debian's full chromium that slowed the job down more than it saved (0.3 → 0.9 s)."""
        while (len(generation.spares) < self.spares and generation is self._current
               and generation.jobs + len(generation.spares) < self.restart_after_jobs
               and generation.browser.is_connected()):
            generation.spares.append(self._new_spare(generation.browser, javascript))

    async def _acquire(self, counted: bool = True) -> _Generation:
        async with self._lock:
            generation = await self._usable_generation()
            generation.jobs += 1 if counted else 0
            generation.active += 1
            return generation

    async def _release(self, generation: _Generation) -> None:
        generation.active -= 1
        if generation is not self._current and generation.active == 0:
            await self._close_generation(generation)

    async def _usable_generation(self) -> _Generation:
        """The current browser, or a new one if it is dead or has served its quota (locked)."""
        current = self._current
        if (current is not None and current.browser.is_connected()
                and current.jobs < self.restart_after_jobs):
            return current
        self._current = None
        if current is not None and current.active == 0:
            await self._close_generation(current)  # else the last job to finish closes it
        browser = await self._launch()
        generation = _Generation(browser)
        if self.spares:
            generation.spares.append(self._new_spare(browser, javascript=False))
        self._open.add(generation)
        self._current = generation
        return generation

    async def _launch(self) -> Browser:
        if self._playwright is None:
            self._playwright = await _start_playwright()
        from playwright.async_api import Error as PlaywrightError

        try:
            browser = await self._playwright.chromium.launch(
                executable_path=self.executable,
                args=launch_args(),
                headless=True,
                # Chromium will not start its sandbox as root, and Playwright passes
                # --no-sandbox unless this is True: keep it for any other user. As root (a
                # container) the container is the sandbox; the browser still has no network.
                chromium_sandbox=os.geteuid() != 0,
                # The replica's shutdown (grace period for in-flight jobs) decides when the
                # browser goes, not a signal reaching the Playwright driver first.
                handle_sigint=False, handle_sigterm=False, handle_sighup=False,
                timeout=self.launch_timeout_s * 1000,
            )
        except PlaywrightError as exc:
            first_line = exc.message.splitlines()[0] if exc.message else ""
            raise BrowserCrashed(f"chromium ({self.executable}) did not start: {first_line}"
                                 ) from exc
        self.launches += 1
        return browser

    async def _close_generation(self, generation: _Generation) -> None:
        from playwright.async_api import Error as PlaywrightError

        self._open.discard(generation)
        for spare in generation.spares:  # their contexts go with the browser
            spare.task.cancel()
        generation.spares.clear()
        with contextlib.suppress(PlaywrightError, TimeoutError):
            await asyncio.wait_for(generation.browser.close(), timeout=10)

    def _new_spare(self, browser: Browser, javascript: bool) -> _Spare:
        task = asyncio.create_task(self._blank_page(browser, javascript))
        # Retrieved here so that a spare nobody takes never logs "exception never retrieved".
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())
        return _Spare(javascript, task)

    async def _blank_page(self, browser: Browser, javascript: bool) -> _Blank:
        """A new context (nothing shared with any other job), its router and its one page, at
        about:blank. Routes first, so the page is intercepted from its first request.

        Bounded: a ``new_page`` racing with the browser's death was seen never to return."""
        from playwright.async_api import Error as PlaywrightError

        async with asyncio.timeout(self.launch_timeout_s):
            context = await browser.new_context(
                java_script_enabled=javascript, service_workers="block", accept_downloads=False)
            try:
                router = _Router()
                await context.route("**/*", router.handle)
                if javascript:  # only scripts open WebSockets (nor could they resolve a host)
                    await context.route_web_socket("**/*", _refuse_websocket)
                return _Blank(context, await context.new_page(), router)
            except PlaywrightError:
                with contextlib.suppress(PlaywrightError):
                    await context.close()
                raise

    def _dispose(self, spare: _Spare) -> None:
        self._in_background(_close_spare(spare))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` (bounded) after the job; ``close`` waits for what is still running."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _print(blank: _Blank, job: _Job) -> tuple[bytes, int | None]:
    r, page = job.request, blank.page
    blank.context.set_default_timeout(r.timeout_s * 1000)
    async with asyncio.timeout(r.timeout_s):
        if r.media == "screen":  # page.pdf() prints with print media otherwise
            await page.emulate_media(media="screen")
        job.stage = "loading the document"
        response = await page.goto(r.url, wait_until="load")
        if r.wait_for_selector:
            job.stage = f"waiting for selector {r.wait_for_selector[:100]!r}"
            await page.wait_for_selector(r.wait_for_selector, state="attached")
        if r.wait_for_expression:
            job.stage = f"waiting for expression {r.wait_for_expression[:100]!r}"
            await page.wait_for_function(r.wait_for_expression)
        job.stage = "printing"
        pdf = await page.pdf(**r.pdf_options)
    return pdf, response.status if response is not None else None


async def _wipe(blank: _Blank, timeout_s: float) -> _Blank:
    """No cookies, like a fresh context. The old document stays until the next job's
    ``goto`` replaces it (an about:blank in between cost ~20 CPU ms a job and hid nothing:
    without scripts it does nothing, and its requests are refused once the job is over).
    A context that cannot be wiped is closed, and the next job opens a fresh one."""
    from playwright.async_api import Error as PlaywrightError

    try:
        async with asyncio.timeout(timeout_s):
            await blank.context.clear_cookies()
    except (PlaywrightError, TimeoutError) as exc:
        await _close_context(blank.context)
        raise PlaywrightError(f"the context could not be wiped: {type(exc).__name__}") from exc
    blank.router.unbind()
    return blank


async def _close_spare(spare: _Spare) -> None:
    with contextlib.suppress(Exception):  # a spare of a dead browser failed: nothing to close
        await _close_context((await spare.task).context)


async def _close_context(context: BrowserContext) -> None:
    with contextlib.suppress(Exception):  # e.g. its browser is gone: so is the context
        await asyncio.wait_for(context.close(), timeout=10)


async def _start_playwright() -> Playwright:
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        raise ChromiumNotFound(f"Playwright is not installed: {INSTALL_HINT}") from exc
    return await async_playwright().start()
