"""Input documents as pages: sniff the format, decode one page at a time.

PDFs are rasterised with pypdfium2, every call under ``workers_core.pdfium.PDFIUM_LOCK``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Protocol

import pypdfium2 as pdfium  # type: ignore[import-untyped]
from PIL import Image, ImageOps, UnidentifiedImageError

from workers_core.ocr.errors import UnreadableDocument, UnsupportedDocument
from workers_core.pdfium import PDFIUM_LOCK

# Largest page we rasterise: a PDF page bigger than this at the configured DPI (a poster, a
# drawing) is rendered at a lower DPI rather than allocating gigabytes.
MAX_RENDER_PIXELS = 60_000_000

# Leading bytes of the formats we accept; the declared content type is not trusted.
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"II+\x00", "image/tiff"),  # BigTIFF
    (b"MM\x00+", "image/tiff"),
)


@dataclass(frozen=True)
class PageImage:
    """One decoded page: RGB pixels and the resolution they were made at."""

    number: int  # 1-based
    image: Image.Image
    dpi: float

    @property
    def size_pt(self) -> tuple[float, float]:
        """Physical size in PDF points (1/72 in), for a searchable PDF page of the same size."""
        return self.image.width * 72 / self.dpi, self.image.height * 72 / self.dpi


class PageSource(Protocol):
    content_type: str
    page_count: int

    def render(self, number: int) -> PageImage: ...

    def close(self) -> None: ...


def sniff(data: bytes, declared: str) -> str:
    """The content type from the bytes themselves; anything else is refused by name."""
    if b"%PDF-" in data[:1024]:  # the spec allows junk before the header
        return "application/pdf"
    for signature, content_type in SIGNATURES:
        if data.startswith(signature):
            return content_type
    raise UnsupportedDocument(
        f"unsupported document type {declared or 'unknown'!r} (first bytes {data[:8]!r}): "
        "OCR accepts PDF, PNG, JPEG and TIFF",
        content_type=declared,
    )


def open_pages(data: bytes, declared: str, dpi: int) -> PageSource:
    """A page source for the bytes; ``dpi`` is the PDF raster resolution and the resolution
    assumed for images that do not record one."""
    content_type = sniff(data, declared)
    if content_type == "application/pdf":
        return PdfPages(data, dpi)
    return ImagePages(data, content_type, dpi)


class PdfPages:
    """Rasterises one page at a time under ``PDFIUM_LOCK``; close it (also under the lock)."""

    content_type = "application/pdf"

    def __init__(self, data: bytes, dpi: int) -> None:
        self.dpi = dpi
        with PDFIUM_LOCK:
            try:
                self._pdf: Any = pdfium.PdfDocument(data)
            except pdfium.PdfiumError as exc:
                # Encrypted files land here too ("Incorrect password error").
                raise UnreadableDocument(f"cannot open the PDF: {exc}") from exc
            self.page_count: int = len(self._pdf)

    def render(self, number: int) -> PageImage:
        with PDFIUM_LOCK:
            page = self._pdf[number - 1]
            try:
                width_pt, height_pt = page.get_size()
                scale = self.dpi / 72
                pixels = width_pt * height_pt * scale * scale
                if pixels > MAX_RENDER_PIXELS:
                    scale *= (MAX_RENDER_PIXELS / pixels) ** 0.5
                bitmap = page.render(scale=scale, rev_byteorder=True)
                image = bitmap.to_pil().convert("RGB")
                bitmap.close()
            except pdfium.PdfiumError as exc:
                raise UnreadableDocument(f"cannot render page {number}: {exc}") from exc
            finally:
                page.close()
        return PageImage(number, image, scale * 72)

    def close(self) -> None:
        with PDFIUM_LOCK:
            self._pdf.close()


class ImagePages:
    """PNG, JPEG, (multi-page) TIFF through Pillow; EXIF orientation is applied."""

    def __init__(self, data: bytes, content_type: str, default_dpi: int) -> None:
        self.content_type = content_type
        self.default_dpi = default_dpi
        try:
            self._image = Image.open(io.BytesIO(data))
            self.page_count = int(getattr(self._image, "n_frames", 1))
        except (UnidentifiedImageError, Image.DecompressionBombError,
                Image.DecompressionBombWarning,  # where warnings are errors
                OSError) as exc:
            raise UnreadableDocument(f"cannot read the {content_type} image: {exc}") from exc
        self._check_size(1)

    def _check_size(self, number: int) -> None:
        """Refused from the header, before decoding: Pillow itself only warns between 89 and
        179 megapixels and then decodes (~540 MB); a page over MAX_RENDER_PIXELS is a bomb."""
        width, height = self._image.size
        if width * height > MAX_RENDER_PIXELS:
            raise UnreadableDocument(
                f"page {number} is {width}x{height} pixels, over the "
                f"{MAX_RENDER_PIXELS // 1_000_000} megapixel limit (a decompression bomb?)")

    def render(self, number: int) -> PageImage:
        try:
            self._image.seek(number - 1)
            self._check_size(number)
            image = _on_white(ImageOps.exif_transpose(self._image))
        except (Image.DecompressionBombError, OSError, ValueError) as exc:
            raise UnreadableDocument(f"cannot decode page {number}: {exc}") from exc
        return PageImage(number, image, self._dpi())

    def _dpi(self) -> float:
        dpi = self._image.info.get("dpi")
        try:
            x_dpi = float(dpi[0]) if dpi else 0.0
        except (TypeError, ValueError, IndexError):
            x_dpi = 0.0
        # Some writers store 1 or 72 meaning "unknown"; a scan is never that coarse. PNG keeps
        # pixels per metre, so 150 DPI comes back as 150.0124: whole DPI is what was meant.
        return float(round(x_dpi)) if x_dpi >= 100 else float(self.default_dpi)

    def close(self) -> None:
        self._image.close()


def _on_white(image: Image.Image) -> Image.Image:
    """RGB; transparent pixels become white paper (a plain RGB conversion makes them black)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        page = Image.new("RGB", rgba.size, "white")
        page.paste(rgba, mask=rgba.getchannel("A"))
        return page
    return image.convert("RGB")
