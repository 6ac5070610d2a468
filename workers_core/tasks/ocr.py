"""ocr.extract: text lines, page text and optionally a searchable PDF from a scan artifact."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import PurePath
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workers_core.jobs.retry import RetryPolicy
from workers_core.ocr.engine import PROBE_TEXT, OcrEngine, load_engine, probe_image
from workers_core.ocr.errors import EngineUnavailable
from workers_core.ocr.ranges import parse_page_spec
from workers_core.ocr.text import bbox_of
from workers_core.tasks.base import Health, JobContext, Resources, Task

if TYPE_CHECKING:
    from PIL import Image

    from workers_core.ocr.pipeline import DocumentText

# The heavy parts (onnxruntime, rapidocr, pypdfium2, Pillow) are imported in setup() and run():
# the task catalog imports this module in every process, the gateway included.
INSTALL_HINT = "install workers-core[ocr]"


class OcrPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    artifact_id: str = Field(
        min_length=1, max_length=64, description="An uploaded PDF, PNG, JPEG or (multi-page) TIFF."
    )
    pages: str | None = Field(
        default=None,
        max_length=200,
        examples=["1-3,5", "4-"],
        description="1-based pages to read; default: all.",
    )
    searchable_pdf: bool = Field(
        default=False, description="Also store a PDF of the pages with an invisible text layer."
    )
    min_confidence: float = Field(
        default=0.5, ge=0, le=1, description="Lines the engine is less sure of are dropped."
    )

    @field_validator("pages")
    @classmethod
    def _valid_pages(cls, pages: str | None) -> str | None:
        if pages is not None:
            parse_page_spec(pages)
        return pages


class OcrLine(BaseModel):
    text: str
    confidence: float
    box: list[tuple[float, float]] = Field(
        description="Four corners, clockwise from top-left, in page pixels."
    )
    bbox: tuple[float, float, float, float] = Field(description="x0, y0, x1, y1 in pixels.")


class OcrPage(BaseModel):
    number: int = Field(description="1-based page number in the document.")
    width: int
    height: int
    dpi: float
    text: str = Field(description="Lines in reading order: rows by newline, boxes by space.")
    lines: list[OcrLine]


class OcrResult(BaseModel):
    engine: str
    content_type: str
    page_count: int = Field(description="Pages in the document (not only those read).")
    pages: list[OcrPage]
    text: str = Field(description="Every page's text, pages separated by a form feed.")
    searchable_pdf_artifact_id: str | None = None


class OcrExtract(Task[OcrPayload, OcrResult]):
    """RapidOCR (or PaddleOCR) loaded once per replica; pages are read in a worker thread so
    the replica's event loop keeps heartbeating."""

    name = "ocr.extract"
    queue = "ocr"
    Payload = OcrPayload
    Result = OcrResult
    resources = Resources(num_cpus=1)
    concurrency = 1  # one CPU-bound page at a time per reserved CPU
    # 50 pages (default WORKERS_OCR_MAX_PAGES) at ~3.5 s per A4 page on one core is ~3 min;
    # room for dense or slow scans and a searchable PDF. Override per queue for bigger jobs.
    time_limit_s = 600.0
    retry = RetryPolicy(max_attempts=3, backoff_base_s=10, backoff_max_s=300)

    engine: OcrEngine
    font: bytes
    probe: Image.Image

    async def setup(self) -> None:
        overrides = self.settings.overrides_for(self.queue)
        cpus = overrides.num_cpus if overrides.num_cpus is not None else self.resources.num_cpus
        gpus = overrides.num_gpus if overrides.num_gpus is not None else self.resources.num_gpus
        try:
            from workers_core.ocr.pipeline import extract  # noqa: F401  (fail here, not in a job)
            from workers_core.ocr.searchable import load_font

            self.font = load_font()
            self.engine = await asyncio.to_thread(load_engine, self.settings, cpus, gpus)
        except ImportError as exc:
            raise EngineUnavailable(
                f"ocr.extract cannot import {exc.name}: {INSTALL_HINT}"
            ) from exc
        # The first call creates the ONNX sessions and pays the warm-up: here, not in a job.
        self.probe = probe_image()  # drawn once; health checks OCR it again
        await asyncio.to_thread(self.engine.recognise, self.probe)

    async def health(self) -> Health:
        """OCR a small known image (~0.5 s; waits for the page in progress, if any)."""
        try:
            lines = await asyncio.to_thread(self.engine.recognise, self.probe)
        except Exception as exc:
            return Health(ok=False, checks={"ocr": f"error: {type(exc).__name__}: {exc}"})
        read = " ".join(line.text for line in lines)
        checks = {**self.engine.describe(), "probe": f"read {read!r}"}
        return Health(ok=PROBE_TEXT in read, checks=checks)

    async def run(self, payload: OcrPayload, ctx: JobContext) -> OcrResult:
        from workers_core.ocr.pipeline import OcrRequest, extract

        meta, data = await ctx.artifacts.get(payload.artifact_id)
        request = OcrRequest(
            pages=payload.pages,
            min_confidence=payload.min_confidence,
            searchable_pdf=payload.searchable_pdf,
            dpi=self.settings.ocr_dpi,
            max_pages=self.settings.ocr_max_pages,
        )
        stop = threading.Event()
        started = time.perf_counter()
        try:
            doc = await asyncio.to_thread(
                extract, data, meta.content_type, request, self.engine, self.font, stop
            )
        except asyncio.CancelledError:
            stop.set()  # time limit or shutdown: the thread stops after its current page
            raise
        pdf_id = None
        if doc.searchable_pdf is not None:
            stem = PurePath(meta.filename).stem if meta.filename else payload.artifact_id
            pdf_meta = await ctx.artifacts.put(
                doc.searchable_pdf, "application/pdf", filename=f"{stem}.ocr.pdf"
            )
            pdf_id = pdf_meta.id
        ctx.log.info(
            "ocr_extracted",
            pages=len(doc.pages),
            engine=self.engine.name,
            seconds=round(time.perf_counter() - started, 2),
        )
        return _result(doc, self.engine.name, pdf_id)


def _result(doc: DocumentText, engine: str, pdf_id: str | None) -> OcrResult:
    pages = [
        OcrPage(
            number=page.number,
            width=page.width,
            height=page.height,
            dpi=round(page.dpi, 2),
            text=page.text,
            lines=[
                OcrLine(
                    text=line.text,
                    confidence=round(line.confidence, 4),
                    box=[(round(x, 1), round(y, 1)) for x, y in line.points],
                    bbox=bbox_of(line.points),
                )
                for line in page.lines
            ],
        )
        for page in doc.pages
    ]
    return OcrResult(
        engine=engine,
        content_type=doc.content_type,
        page_count=doc.page_count,
        pages=pages,
        text=doc.text,
        searchable_pdf_artifact_id=pdf_id,
    )
