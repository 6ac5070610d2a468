"""Searchable PDF: each page image with the recognised lines as invisible text over it.

Built with PDFium's own editing API (through pypdfium2): the page image as a JPEG image
object, each line as a text object in render mode 3 (invisible, PDF 32000-1 §9.3.6),
stretched to its box so selection and search highlight the right place. The font is
DejaVu Sans loaded as a CID TrueType font, so ș ț ă â î survive copy and search; PDFium
embeds the whole file (~0.7 MB before compression, once per PDF) as it cannot subset.
"""

from __future__ import annotations

import ctypes
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pypdfium2.raw as pdfium_c  # type: ignore[import-untyped]

from workers_core.ocr.errors import EngineUnavailable
from workers_core.ocr.pages import PageImage
from workers_core.ocr.text import BBox
from workers_core.pdfium import PDFIUM_LOCK

DEJAVU_SANS = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
JPEG_QUALITY = 80
# Share of a detected line box taken by the font size, and where the baseline sits: the
# detector pads boxes (unclip ratio 1.6), so glyphs are smaller than the box.
FONT_SIZE_OF_BOX = 0.8
BASELINE_OF_BOX = 0.2


def load_font(path: Path = DEJAVU_SANS) -> bytes:
    """The TrueType font for text layers; missing is a deployment error, found at start-up."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EngineUnavailable(
            f"font for searchable PDFs not found at {path}: install fonts-dejavu-core"
        ) from exc


class SearchablePdf:
    """Add pages one by one (the caller's page image can be freed after each), then ``save``.
    Every PDFium call holds ``PDFIUM_LOCK``; ``close`` releases the native document."""

    def __init__(self, font: bytes) -> None:
        with PDFIUM_LOCK:
            self._pdf: Any = pdfium.PdfDocument.new()
            buffer = (ctypes.c_uint8 * len(font)).from_buffer_copy(font)  # PDFium copies it
            self._font = pdfium_c.FPDFText_LoadFont(
                self._pdf, buffer, len(font), pdfium_c.FPDF_FONT_TRUETYPE, True
            )
            if not self._font:
                self._pdf.close()
                raise EngineUnavailable("PDFium could not load the text-layer font")

    def add_page(self, page: PageImage, lines: Sequence[tuple[str, BBox]]) -> None:
        """A page of the image's physical size; ``lines`` are (text, pixel box) pairs."""
        jpeg = io.BytesIO()
        page.image.save(jpeg, "JPEG", quality=JPEG_QUALITY)
        jpeg.seek(0)
        width_pt, height_pt = page.size_pt
        scale = 72 / page.dpi
        with PDFIUM_LOCK:
            pdf_page = self._pdf.new_page(width_pt, height_pt)
            try:
                image = pdfium.PdfImage.new(self._pdf)
                image.load_jpeg(jpeg, inline=True)
                image.set_matrix(pdfium.PdfMatrix(width_pt, 0, 0, height_pt, 0, 0))
                pdf_page.insert_obj(image)
                for text, (x0, y0, x1, y1) in lines:
                    # PDF y grows upwards from the bottom; image y grows downwards.
                    self._add_text(
                        pdf_page,
                        text,
                        (x0 * scale, height_pt - y1 * scale, x1 * scale, height_pt - y0 * scale),
                    )
                pdf_page.gen_content()
            finally:
                pdf_page.close()

    def _add_text(self, pdf_page: Any, text: str, box: BBox) -> None:
        left, bottom, right, top = box
        if not text or right <= left or top <= bottom:
            return
        obj = pdfium_c.FPDFPageObj_CreateTextObj(self._pdf, self._font, 1.0)
        encoded = (text + "\x00").encode("utf-16-le")
        if not pdfium_c.FPDFText_SetText(
            obj, ctypes.cast(ctypes.c_char_p(encoded), pdfium_c.FPDF_WIDESTRING)
        ):
            pdfium_c.FPDFPageObj_Destroy(obj)
            return
        pdfium_c.FPDFTextObj_SetTextRenderMode(obj, pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE)
        natural_width = _width(obj)  # at font size 1, unscaled
        height = top - bottom
        size = height * FONT_SIZE_OF_BOX
        stretch = (right - left) / natural_width if natural_width > 0 else size
        pdfium_c.FPDFPageObj_Transform(
            obj, stretch, 0, 0, size, left, bottom + height * BASELINE_OF_BOX
        )
        pdfium_c.FPDFPage_InsertObject(pdf_page, obj)  # the page owns it from here

    def save(self) -> bytes:
        out = io.BytesIO()
        with PDFIUM_LOCK:
            self._pdf.save(out)
        return out.getvalue()

    def close(self) -> None:
        with PDFIUM_LOCK:
            pdfium_c.FPDFFont_Close(self._font)
            self._pdf.close()


def _width(obj: Any) -> float:
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    if not pdfium_c.FPDFPageObj_GetBounds(obj, left, bottom, right, top):
        return 0.0
    return float(right.value - left.value)
