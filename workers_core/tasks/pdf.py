"""pdf.render: HTML (inline or an artifact) or an allowlisted URL, printed by headless Chromium.

Options follow Gotenberg's Chromium routes (paper, margins, landscape, scale, page ranges,
header/footer, media, wait conditions); the paper defaults to A4 (Romanian invoices), not
Gotenberg's Letter. A page sees only what its job names: its HTML, served at
``https://artifacts.invalid/`` (RFC 2606: ``.invalid`` never resolves), the artifacts listed in
``assets`` (``https://artifacts.invalid/<id>``, or just ``<id>`` relative to that document),
``data:`` URLs, and what netguard lets through from WORKERS_PDF_ALLOWED_HOSTS. Never
``file:``, loopback, link-local or private addresses, redirects included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from workers_core.artifacts import ArtifactId
from workers_core.errors import NonRetryable, Retry, WorkersError
from workers_core.integrations.chromium import (
    INSTALL_HINT,
    ChromiumNotFound,
    RenderRequest,
    RenderTimeout,
    Reply,
    WarmBrowser,
)
from workers_core.integrations.netguard import BlockedUrl, GuardedFetcher, UrlPolicy
from workers_core.jobs.retry import RetryPolicy
from workers_core.pdfium import page_count, pdfium
from workers_core.tasks.base import Health, JobContext, Resources, Task

DOCUMENT_ORIGIN = "https://artifacts.invalid"
DOCUMENT_URL = DOCUMENT_ORIGIN + "/"
MAX_BLOCKED_REPORTED = 50

PaperFormat = Literal["Letter", "Legal", "Tabloid", "Ledger", "A0", "A1", "A2", "A3", "A4", "A5",
                      "A6"]
Length = Annotated[str, StringConstraints(pattern=r"^\d{1,4}(\.\d{1,4})?(px|in|cm|mm)$")]
PAGE_RANGES = r"^\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*$"  # "1-3, 5, 8-9"


class Margins(BaseModel):
    """Page margins with a unit (px, in, cm, mm); 1 cm ≈ Gotenberg's 0.39 in default."""

    model_config = ConfigDict(extra="forbid")

    top: Length = "1cm"
    right: Length = "1cm"
    bottom: Length = "1cm"
    left: Length = "1cm"


class PdfPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    html: str | None = Field(default=None, max_length=5_000_000)
    html_artifact_id: ArtifactId | None = None
    url: str | None = Field(default=None, max_length=2048,
                            description="http(s) on a host in WORKERS_PDF_ALLOWED_HOSTS.")
    assets: list[ArtifactId] = Field(
        default_factory=list, max_length=50,
        description="Artifacts the page may load, at https://artifacts.invalid/<id>.")
    paper_format: PaperFormat | None = Field(
        default=None, description="Default A4 unless width and height are given.")
    width: Length | None = None
    height: Length | None = None
    margin: Margins = Field(default_factory=Margins)
    landscape: bool = False
    print_background: bool = False
    scale: float = Field(default=1.0, ge=0.1, le=2.0)
    page_ranges: str | None = Field(default=None, max_length=200, pattern=PAGE_RANGES)
    prefer_css_page_size: bool = False
    header_template: str | None = Field(
        default=None, max_length=100_000,
        description="HTML; classes date, title, url, pageNumber, totalPages are filled in.")
    footer_template: str | None = Field(default=None, max_length=100_000)
    emulated_media: Literal["print", "screen"] = "print"
    javascript: bool = Field(default=False, description="Off: the page runs no scripts.")
    wait_for_selector: str | None = Field(default=None, min_length=1, max_length=1000)
    wait_for_expression: str | None = Field(default=None, min_length=1, max_length=10_000)
    timeout_s: float | None = Field(
        default=None, gt=0, description="Default and maximum: WORKERS_PDF_RENDER_TIMEOUT_S.")
    tagged: bool = False
    outline: bool = False
    filename: str = Field(default="document.pdf", min_length=1, max_length=255,
                          pattern=r"^[^/\\\x00-\x1f]+$")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if sum(x is not None for x in (self.html, self.html_artifact_id, self.url)) != 1:
            raise ValueError("give exactly one of html, html_artifact_id, url")
        if (self.width is None) != (self.height is None):
            raise ValueError("give both width and height, or neither")
        if self.width is not None and self.paper_format is not None:
            raise ValueError("give paper_format or width and height, not both")
        if (self.wait_for_selector or self.wait_for_expression) and not self.javascript:
            raise ValueError("wait_for_selector and wait_for_expression need javascript=true")
        if self.url is not None and urlsplit(self.url).scheme.lower() not in ("http", "https"):
            raise ValueError("url must be http or https")
        return self

    def pdf_options(self) -> dict[str, Any]:
        """Keyword arguments for Playwright's ``Page.pdf``."""
        options: dict[str, Any] = {
            "landscape": self.landscape, "print_background": self.print_background,
            "scale": self.scale, "margin": self.margin.model_dump(),
            "prefer_css_page_size": self.prefer_css_page_size,
            "tagged": self.tagged, "outline": self.outline,
        }
        if self.width is not None:
            options.update(width=self.width, height=self.height)
        else:
            options["format"] = self.paper_format or "A4"
        if self.page_ranges:
            options["page_ranges"] = self.page_ranges
        if self.header_template is not None or self.footer_template is not None:
            # A missing one would get Chromium's default (title, URL, date): print nothing.
            options.update(display_header_footer=True,
                           header_template=self.header_template or "<span></span>",
                           footer_template=self.footer_template or "<span></span>")
        return options


class PdfResult(BaseModel):
    artifact_id: str
    filename: str
    pages: int
    size_bytes: int
    sha256: str
    render_s: float
    blocked_requests: list[str] = Field(
        default_factory=list,
        description=f"Requests the page made that were refused (first {MAX_BLOCKED_REPORTED}).")


@dataclass
class _JobNetwork:
    """Answers a job's page requests: its document, its assets, guarded fetches; else blocks."""

    html: str | None
    assets: frozenset[str]
    artifacts: Any  # ArtifactStore
    fetcher: GuardedFetcher
    _cache: dict[str, Reply] = field(default_factory=dict)

    async def serve(self, url: str, method: str, headers: Mapping[str, str]) -> Reply:
        if url.startswith(DOCUMENT_URL):
            return await self._local(url.removeprefix(DOCUMENT_URL).partition("?")[0])
        fetched = await self.fetcher.fetch(url, method, headers)
        return Reply(fetched.status, fetched.headers, fetched.body)

    async def _local(self, name: str) -> Reply:
        if name in ("", "index.html") and self.html is not None:
            return Reply(200, {"content-type": "text/html; charset=utf-8"}, self.html.encode())
        if name not in self.assets:
            raise BlockedUrl(f"artifact {name[:80]!r} is not in the job's assets")
        if name not in self._cache:
            meta, data = await self.artifacts.get(name)
            self._cache[name] = Reply(200, {"content-type": meta.content_type}, data)
        return self._cache[name]


async def _health_page(url: str, method: str, headers: Mapping[str, str]) -> Reply:
    """The one document of the health check; anything else it asked for would be refused."""
    return Reply(200, {"content-type": "text/html; charset=utf-8"},
                 b"<!doctype html><title>health</title>")


class RenderPdf(Task[PdfPayload, PdfResult]):
    """One warm Chromium per replica; each job gets a fresh context and no network but its own."""

    name = "pdf.render"
    queue = "pdf.render"
    Payload = PdfPayload
    Result = PdfResult
    resources = Resources(num_cpus=1)
    concurrency = 3  # jobs also wait on I/O and on Chromium's processes (bench: 3 in flight
    # render 20-50 % more PDFs/s than 1 on 2 cores); each in-flight job holds a renderer
    time_limit_s = 180.0  # render timeout (≤ settings) + artifact I/O
    retry = RetryPolicy(max_attempts=3, backoff_base_s=2, backoff_max_s=60)

    async def setup(self) -> None:
        _pdfium()  # missing: fail the replica's start, not every job
        self.policy = UrlPolicy(self.settings.pdf_allowed_hosts)
        self.fetcher = GuardedFetcher(self.policy, timeout_s=self.settings.pdf_render_timeout_s,
                                      max_bytes=self.settings.artifact_max_bytes)
        self.browser = WarmBrowser.from_settings(self.settings)
        await self.browser.start()

    async def health(self) -> Health:
        """Chromium alive and printing an empty page end to end (a fresh context)."""
        try:
            version = await self.browser.start()  # a dead browser is replaced
            blank = await self.browser.render(RenderRequest(
                url=DOCUMENT_URL, serve=_health_page,
                timeout_s=self.settings.health_check_timeout_s), counted=False)
        except WorkersError as exc:
            return Health(ok=False, checks={"chromium": f"error: {exc.message}"})
        printed = blank.pdf.startswith(b"%PDF-")
        return Health(ok=printed, checks={
            "chromium": f"ok ({version})",
            "blank_page": f"ok ({blank.elapsed_s * 1000:.0f} ms)" if printed
            else "error: the blank page did not print as a PDF"})

    async def close(self) -> None:
        await self.browser.close()
        await self.fetcher.aclose()

    async def run(self, payload: PdfPayload, ctx: JobContext) -> PdfResult:
        if payload.url is not None:
            await self.policy.check(payload.url)  # refused host: fail before any browser work
        for asset in payload.assets:  # fail now, not as a silently missing image
            await ctx.artifacts.meta(asset)
        network = _JobNetwork(await self._html(payload, ctx), frozenset(payload.assets),
                              ctx.artifacts, self.fetcher)
        request = RenderRequest(
            url=payload.url or DOCUMENT_URL, serve=network.serve,
            timeout_s=self._timeout_s(payload), pdf_options=payload.pdf_options(),
            javascript=payload.javascript, media=payload.emulated_media,
            wait_for_selector=payload.wait_for_selector,
            wait_for_expression=payload.wait_for_expression,
        )
        try:
            output = await self.browser.render(request)
        except RenderTimeout as exc:
            if payload.url is not None:  # a slow remote server may be faster later
                raise Retry(exc.message) from exc
            raise
        _check_status(payload, output.status)
        pages = page_count(output.pdf)
        if pages > self.settings.pdf_max_pages:
            raise NonRetryable(f"the PDF has {pages} pages, over WORKERS_PDF_MAX_PAGES="
                               f"{self.settings.pdf_max_pages}: use page_ranges")
        meta = await ctx.artifacts.put(output.pdf, "application/pdf", filename=payload.filename)
        ctx.log.info("pdf_rendered", pages=pages, size_bytes=meta.size,
                     render_s=round(output.elapsed_s, 3), blocked=len(output.blocked))
        return PdfResult(artifact_id=meta.id, filename=payload.filename, pages=pages,
                         size_bytes=meta.size, sha256=meta.sha256,
                         render_s=round(output.elapsed_s, 3),
                         blocked_requests=output.blocked[:MAX_BLOCKED_REPORTED])

    def _timeout_s(self, payload: PdfPayload) -> float:
        limit = self.settings.pdf_render_timeout_s
        if payload.timeout_s is not None and payload.timeout_s > limit:
            raise NonRetryable(f"timeout_s={payload.timeout_s:g} is over "
                               f"WORKERS_PDF_RENDER_TIMEOUT_S={limit:g}")
        return payload.timeout_s or limit

    @staticmethod
    async def _html(payload: PdfPayload, ctx: JobContext) -> str | None:
        if payload.html_artifact_id is None:
            return payload.html
        _, data = await ctx.artifacts.get(payload.html_artifact_id)
        try:
            return str(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise NonRetryable(f"artifact {payload.html_artifact_id} is not UTF-8 HTML: {exc}"
                               ) from exc


def _check_status(payload: PdfPayload, status: int | None) -> None:
    """A URL answering 4xx/5xx is an error page, not the document (Gotenberg fails on 5xx)."""
    if payload.url is None or status is None or status < 400:
        return
    message = f"{payload.url[:200]} answered HTTP {status}"
    if status >= 500 or status in (408, 429):
        raise Retry(message)
    raise NonRetryable(message)


def _pdfium() -> Any:
    try:
        return pdfium()
    except ImportError as exc:
        raise ChromiumNotFound(f"pypdfium2 is not installed: {INSTALL_HINT}") from exc
