"""One document through OCR, synchronously: meant for a worker thread.

The thread owns every native object it opens (PDFium documents, images) from open to close,
so a job cancelled by its time limit never leaves them to a finaliser on another thread; it
stops at the next page when ``stop`` is set.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from workers_core.ocr.engine import OcrEngine, RecognisedLine
from workers_core.ocr.pages import PageImage, open_pages
from workers_core.ocr.ranges import select_pages
from workers_core.ocr.searchable import SearchablePdf
from workers_core.ocr.text import BBox, bbox_of, join_rows, normalise_text, reading_order

PAGE_SEPARATOR = "\f"  # form feed between pages, as pdftotext does


@dataclass(frozen=True)
class OcrRequest:
    pages: str | None
    min_confidence: float
    searchable_pdf: bool
    dpi: int
    max_pages: int


@dataclass(frozen=True)
class PageText:
    """A page's lines, cleaned, filtered and in reading order, and its text."""

    number: int
    width: int
    height: int
    dpi: float
    lines: list[RecognisedLine]
    text: str


@dataclass(frozen=True)
class DocumentText:
    content_type: str
    page_count: int  # in the document, not only the pages read
    pages: list[PageText]
    searchable_pdf: bytes | None

    @property
    def text(self) -> str:
        return PAGE_SEPARATOR.join(page.text for page in self.pages)


class Stopped(Exception):
    """The job was cancelled while its pages were being read."""


def extract(
    data: bytes,
    declared_type: str,
    request: OcrRequest,
    engine: OcrEngine,
    font: bytes,
    stop: threading.Event,
) -> DocumentText:
    """Decode, select, OCR and (on request) rebuild the document as a searchable PDF."""
    source = open_pages(data, declared_type, request.dpi)
    pdf: SearchablePdf | None = None
    try:
        numbers = select_pages(request.pages, source.page_count, request.max_pages)
        pdf = SearchablePdf(font) if request.searchable_pdf else None
        pages: list[PageText] = []
        for number in numbers:
            if stop.is_set():
                raise Stopped(f"stopped before page {number}")
            page = source.render(number)
            text = read_page(page, engine, request.min_confidence)
            if pdf is not None:
                pdf.add_page(page, [(line.text, bbox_of(line.points)) for line in text.lines])
            pages.append(text)
        return DocumentText(
            source.content_type, source.page_count, pages, pdf.save() if pdf is not None else None
        )
    finally:
        if pdf is not None:
            pdf.close()
        source.close()


def read_page(page: PageImage, engine: OcrEngine, min_confidence: float) -> PageText:
    """OCR one page, drop unsure and empty lines, normalise text, order for reading."""
    kept: list[RecognisedLine] = []
    for line in engine.recognise(page.image):
        text = normalise_text(line.text)
        if text and line.confidence >= min_confidence:
            kept.append(RecognisedLine(text, line.confidence, line.points))
    boxes: list[BBox] = [bbox_of(line.points) for line in kept]
    rows = reading_order(boxes)
    return PageText(
        number=page.number,
        width=page.image.width,
        height=page.image.height,
        dpi=page.dpi,
        lines=[kept[i] for row in rows for i in row],
        text=join_rows([[kept[i].text for i in row] for row in rows]),
    )
