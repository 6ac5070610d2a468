"""Synthetic scans for OCR tests and the bench: Romanian invoice text drawn with DejaVu Sans.

Each page is a list of rows; a row is one or more (x, text) cells, so a label and its value
far apart on one row test reading order. ``reference_text`` is what a perfect OCR returns.
``ocr`` runs a scan through an ``ocr.extract`` task as a job would.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from workers_core.artifacts import artifact_store_from_settings
from workers_core.config import Settings
from workers_core.tasks.base import JobContext
from workers_core.tasks.ocr import OcrExtract, OcrPayload, OcrResult

FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_PX = 30
ROW_PX = 64
MARGIN_PX = 60
MIN_HEIGHT_PX = 760
DPI = 150  # the size drawn: 30 px at 150 DPI is ~10.8 pt text

Row = Sequence[tuple[int, str]]

INVOICE: list[Row] = [
    [(0, "FACTURĂ FISCALĂ nr. 2026-0042")],
    [(0, "Data emiterii: 15.03.2026"), (820, "Scadența: 14.04.2026")],
    [(0, "Furnizor: Rădăcina Verde SRL, CUI RO12345678")],
    [(0, "Cumpărător: Societatea Ștefănescu și Fiii SRL")],
    [(0, "Adresa: Str. Mihai Eminescu nr. 7, București")],
    [(0, "Servicii de întreținere și reparații"), (820, "Cantitate: 3 buc.")],
    [(0, "Preț unitar fără TVA: 345,60 lei")],
    [(0, "Valoare TVA 19%: 197,00 lei")],
    [(0, "Total de plată:"), (820, "1.234,56 lei")],
    [(0, "Plata în lei, în contul ÎNTREPRINDERII ÂNCUȚA")],
]

SECOND_PAGE: list[Row] = [
    [(0, "Anexa 1 la factura 2026-0042")],
    [(0, "Menționăm că livrarea s-a făcut la sediul clientului.")],
    [(0, "Mulțumim pentru colaborare!")],
]


def short_page(label: str) -> list[Row]:
    """A small page for tests that only need to tell pages apart."""
    return [[(0, f"Pagina {label}: recepție mărfuri")]]


def render(rows: Sequence[Row], width: int = 1500) -> Image.Image:
    """White page, black text: one row every ``ROW_PX`` pixels. At least ``MIN_HEIGHT_PX``
    tall: RapidOCR scales the shorter side up to 736 px, so short strips would be slow."""
    font = ImageFont.truetype(FONT_PATH, FONT_PX)
    height = max(MIN_HEIGHT_PX, 2 * MARGIN_PX + ROW_PX * len(rows))
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for r, row in enumerate(rows):
        for x, text in row:
            draw.text((MARGIN_PX + x, MARGIN_PX + r * ROW_PX), text, font=font, fill=0)
    return image


def reference_text(rows: Sequence[Row]) -> str:
    return "\n".join(" ".join(text for _, text in row) for row in rows)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", dpi=(DPI, DPI))
    return out.getvalue()


def pdf(images: Sequence[Image.Image]) -> bytes:
    """A multi-page PDF with each image as a page at ``DPI`` (Pillow's PDF writer)."""
    out = io.BytesIO()
    first, *rest = [im.convert("RGB") for im in images]
    first.save(out, "PDF", save_all=True, append_images=rest, resolution=DPI)
    return out.getvalue()


def tiff(images: Sequence[Image.Image]) -> bytes:
    """A multi-page TIFF (LZW), as scanners write them."""
    out = io.BytesIO()
    first, *rest = images
    first.save(
        out, "TIFF", save_all=True, append_images=rest, compression="tiff_lzw", dpi=(DPI, DPI)
    )
    return out.getvalue()


def context(s: Settings) -> JobContext:
    """A first attempt's context over the artifact store ``s`` names."""
    return JobContext(job_id=f"job-ocr-{uuid.uuid4().hex[:8]}", task="ocr.extract", queue="ocr",
                      attempt=1, max_attempts=3, correlation_id=None, settings=s,
                      artifacts=artifact_store_from_settings(s))


async def ocr(task: OcrExtract, data: bytes, content_type: str, **payload: object) -> OcrResult:
    """``data`` stored as an artifact, then read by ``task`` with ``payload``'s options."""
    ctx = context(task.settings)
    meta = await ctx.artifacts.put(data, content_type, filename="scan")
    return await task.run(OcrPayload.model_validate({"artifact_id": meta.id, **payload}), ctx)
