"""ocr.extract against real RapidOCR, real PDFium and the real Redis artifact store.

Pages are drawn with DejaVu Sans (tests/unit/ocr_pages.py); accuracy is 1 - Levenshtein
distance / reference length. The engine is loaded once for the module (a few seconds).
"""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pypdfium2.raw as pdfium_c  # type: ignore[import-untyped]
import pytest
from PIL import Image
from pydantic import ValidationError

from tests.unit import ocr_pages
from tests.unit.ocr_pages import context, ocr
from workers_core.config import Settings
from workers_core.errors import NonRetryable
from workers_core.local.redis_server import RedisServer
from workers_core.ocr import (
    EngineUnavailable,
    PageOutOfRange,
    TooManyPages,
    UnreadableDocument,
    UnsupportedDocument,
    normalise_text,
    onnx_providers,
    onnx_threads,
    parse_page_spec,
    reading_order,
    wants_gpu,
)
from workers_core.ocr.pages import sniff
from workers_core.ocr.pipeline import OcrRequest, Stopped, extract
from workers_core.ocr.rapid import MODEL_FILES, MODELS_DIR
from workers_core.tasks.ocr import OcrExtract, OcrPayload

MAX_PAGES = 3


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def accuracy(got: str, reference: str) -> float:
    return 1 - levenshtein(got, reference) / len(reference)


@pytest.fixture(scope="module")
def ocr_settings(redis_server: RedisServer) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=redis_server.url,
        redis_prefix=f"t{uuid.uuid4().hex[:10]}",
        ocr_dpi=ocr_pages.DPI,
        ocr_max_pages=MAX_PAGES,
    )


@pytest.fixture(scope="module")
async def task(ocr_settings: Settings) -> AsyncIterator[OcrExtract]:
    t = OcrExtract(ocr_settings)
    await t.setup()
    yield t
    await t.close()


def tiff_of(*labels: str) -> bytes:
    return ocr_pages.tiff([ocr_pages.render(ocr_pages.short_page(label)) for label in labels])


# -- documents in, text out ---------------------------------------------------------------


async def test_reads_a_romanian_invoice_png_with_diacritics_in_reading_order(
    task: OcrExtract,
) -> None:
    image = ocr_pages.render(ocr_pages.INVOICE)
    result = await ocr(task, ocr_pages.png(image), "image/png")
    [page] = result.pages
    reference = ocr_pages.reference_text(ocr_pages.INVOICE)
    assert accuracy(page.text, reference) >= 0.97, page.text
    # Label and value drawn 820 px apart on one row come out as one line of text.
    [total] = [row for row in page.text.splitlines() if row.startswith("Total de plată:")]
    assert "1.234,56" in total
    assert (page.number, page.width, page.height, page.dpi) == (
        1,
        image.width,
        image.height,
        ocr_pages.DPI,
    )
    assert result.content_type == "image/png" and result.text == page.text
    for line in page.lines:
        assert len(line.box) == 4 and 0.5 <= line.confidence <= 1
        x0, y0, x1, y1 = line.bbox
        assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height


async def test_two_page_pdf_becomes_text_and_a_searchable_pdf(task: OcrExtract) -> None:
    rows = [ocr_pages.INVOICE, ocr_pages.SECOND_PAGE]
    images = [ocr_pages.render(r) for r in rows]
    result = await ocr(task, ocr_pages.pdf(images), "application/pdf", searchable_pdf=True)

    assert [p.number for p in result.pages] == [1, 2] and result.page_count == 2
    for page, page_rows in zip(result.pages, rows, strict=True):
        assert accuracy(page.text, ocr_pages.reference_text(page_rows)) >= 0.97, page.text
    assert result.text == result.pages[0].text + "\f" + result.pages[1].text

    assert result.searchable_pdf_artifact_id is not None
    meta, data = await context(task.settings).artifacts.get(result.searchable_pdf_artifact_id)
    assert meta.content_type == "application/pdf" and meta.filename == "scan.ocr.pdf"
    pdf = pdfium.PdfDocument(data)
    try:
        assert len(pdf) == 2
        for i, page_rows in enumerate(rows):
            page = pdf[i]
            width_pt, _ = page.get_size()
            assert width_pt == pytest.approx(images[i].width * 72 / ocr_pages.DPI, abs=0.5)
            text = page.get_textpage().get_text_bounded().replace("\r\n", "\n")
            assert accuracy(normalise_text(text), ocr_pages.reference_text(page_rows)) >= 0.97
            modes = {
                pdfium_c.FPDFTextObj_GetTextRenderMode(obj)
                for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_TEXT])
            }
            assert modes == {pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE}
    finally:
        pdf.close()


async def test_a_page_range_reads_those_frames_of_a_multi_page_tiff(task: OcrExtract) -> None:
    result = await ocr(task, tiff_of("1", "2", "3"), "image/tiff", pages="1,3")
    assert result.content_type == "image/tiff" and result.page_count == 3
    assert [p.number for p in result.pages] == [1, 3]
    for page in result.pages:  # each frame's own text: the TIFF is decoded frame by frame
        reference = ocr_pages.reference_text(ocr_pages.short_page(str(page.number)))
        assert accuracy(page.text, reference) >= 0.97, page.text


async def test_a_blank_page_has_no_lines(task: OcrExtract) -> None:
    blank = Image.new("L", (800, 800), 255)
    result = await ocr(task, ocr_pages.png(blank), "image/png")
    assert result.pages[0].lines == [] and result.text == ""


async def test_a_transparent_png_is_read_as_black_on_white(task: OcrExtract) -> None:
    ink = ocr_pages.render(ocr_pages.short_page("5"))
    # Black everywhere, text opaque, paper fully transparent: RGB alone would be all black.
    transparent = Image.new("RGBA", ink.size, (0, 0, 0, 0))
    transparent.putalpha(ink.point(lambda v: 255 - v))
    result = await ocr(task, ocr_pages.png(transparent), "image/png")
    reference = ocr_pages.reference_text(ocr_pages.short_page("5"))
    assert accuracy(result.text, reference) >= 0.97, result.text


# -- refused before any OCR ----------------------------------------------------------------


async def test_more_pages_than_allowed_is_not_retryable(task: OcrExtract) -> None:
    with pytest.raises(TooManyPages, match=f"at most {MAX_PAGES}") as err:
        await ocr(task, tiff_of("1", "2", "3", "4"), "image/tiff")
    assert isinstance(err.value, NonRetryable) and not err.value.retryable


async def test_a_page_past_the_end_is_not_retryable(task: OcrExtract) -> None:
    with pytest.raises(PageOutOfRange, match="page 5 was requested; the document has 2"):
        await ocr(task, tiff_of("1", "2"), "image/tiff", pages="2-5")


async def test_unsupported_content_is_refused_naming_its_type(task: OcrExtract) -> None:
    gif = io.BytesIO()
    Image.new("L", (10, 10)).save(gif, "GIF")
    with pytest.raises(UnsupportedDocument, match="'image/gif'") as err:
        await ocr(task, gif.getvalue(), "image/gif")
    assert not err.value.retryable
    with pytest.raises(UnsupportedDocument, match="'text/plain'"):
        await ocr(task, "Factură".encode(), "text/plain")


async def test_a_broken_pdf_is_not_retryable(task: OcrExtract) -> None:
    with pytest.raises(UnreadableDocument, match="cannot open the PDF"):
        await ocr(task, b"%PDF-1.7\n not really a pdf", "application/pdf")


def test_a_stopped_job_reads_no_further_page(task: OcrExtract) -> None:
    stop = threading.Event()
    stop.set()
    request = OcrRequest(
        pages=None, min_confidence=0.5, searchable_pdf=True, dpi=ocr_pages.DPI, max_pages=MAX_PAGES
    )
    with pytest.raises(Stopped, match="before page 1"):
        extract(tiff_of("1"), "image/tiff", request, task.engine, task.font, stop)


# -- engine and replica --------------------------------------------------------------------


async def test_health_reads_the_probe_image_on_cpu(task: OcrExtract) -> None:
    health = await task.health()
    assert health.ok, health.checks
    assert health.checks["providers"] == "CPUExecutionProvider"
    assert health.checks["threads"] == "1"  # Resources(num_cpus=1)


def test_the_task_module_imports_without_the_ocr_packages() -> None:
    # The task catalog imports every task module in every process (the gateway too).
    heavy = ["rapidocr", "onnxruntime", "pypdfium2", "PIL", "cv2"]
    code = (
        "import sys, workers_core.tasks.ocr, workers_core.ocr; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_models_ship_inside_the_rapidocr_wheel() -> None:
    for file in MODEL_FILES.values():
        assert (MODELS_DIR / file).stat().st_size > 500_000


def test_onnx_threads_follow_the_replica_cpus() -> None:
    assert onnx_threads(1, 16) == 1
    assert onnx_threads(4, 16) == 4
    assert onnx_threads(4, 2) == 2  # never more threads than usable cores
    assert onnx_threads(0.5, 16) == 1


def test_gpu_only_when_enabled_reserved_and_present() -> None:
    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx_providers(True, 1, both) == both
    assert onnx_providers(True, 0.25, both) == both
    assert onnx_providers(True, 0, both) == ["CPUExecutionProvider"]  # no GPU reserved
    assert onnx_providers(False, 1, both) == ["CPUExecutionProvider"]
    assert onnx_providers(True, 1, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert wants_gpu(True, 1, cuda_available=True)
    assert not wants_gpu(True, 1, cuda_available=False)


async def test_paddle_without_a_model_dir_fails_setup_clearly(ocr_settings: Settings) -> None:
    s = ocr_settings.model_copy(update={"ocr_engine": "paddle", "ocr_paddle_model_dir": None})
    with pytest.raises(EngineUnavailable, match="WORKERS_OCR_PADDLE_MODEL_DIR"):
        await OcrExtract(s).setup()


async def test_paddle_with_missing_models_or_package_fails_setup_clearly(
    ocr_settings: Settings, tmp_path: Path
) -> None:
    s = ocr_settings.model_copy(update={"ocr_engine": "paddle", "ocr_paddle_model_dir": tmp_path})
    with pytest.raises(EngineUnavailable, match=r"models missing .*/det, .*/rec"):
        await OcrExtract(s).setup()
    for part in ("det", "rec"):
        (tmp_path / part).mkdir()
        (tmp_path / part / "inference.yml").write_text("Global:\n  model_name: PP-OCRv5_x\n")
        (tmp_path / part / "inference.pdiparams").write_bytes(b"")
    with pytest.raises(EngineUnavailable, match=r"not installed: install workers-core\[paddle\]"):
        await OcrExtract(s).setup()


# -- pure parts ----------------------------------------------------------------------------


def test_the_format_comes_from_the_bytes_not_the_declared_type() -> None:
    def encoded(fmt: str) -> bytes:
        out = io.BytesIO()
        Image.new("L", (8, 8), 255).save(out, fmt)
        return out.getvalue()

    assert sniff(encoded("PNG"), "application/octet-stream") == "image/png"
    assert sniff(encoded("JPEG"), "") == "image/jpeg"
    assert sniff(encoded("TIFF"), "image/png") == "image/tiff"
    assert sniff(ocr_pages.pdf([Image.new("L", (8, 8))]), "image/png") == "application/pdf"


def test_cedilla_s_and_t_become_comma_below() -> None:
    assert normalise_text("Ştefăneşti, Ţară, şi ţesături") == "Ștefănești, Țară, și țesături"
    assert normalise_text("s\u0327i") == "și"  # decomposed cedilla: NFC, then mapped


def test_reading_order_groups_rows_top_down_then_left_to_right() -> None:
    boxes = [
        (700, 102, 900, 138),  # value of row 2, slightly lower than its label
        (50, 10, 400, 40),  # title
        (50, 100, 300, 136),  # label of row 2
        (50, 200, 500, 236),  # row 3
        (600, 12, 800, 42),  # right of the title
    ]
    assert reading_order(boxes) == [[1, 4], [2, 0], [3]]


def test_page_ranges_are_one_based_and_validated() -> None:
    assert parse_page_spec("1-3, 5,8-") == [(1, 3), (5, 5), (8, None)]
    for bad in ("0", "3-1", "a", "1,,2", "-2", ""):
        with pytest.raises(ValidationError):
            OcrPayload(artifact_id="art_1", pages=bad)
    OcrPayload(artifact_id="art_1", pages="2-")
    with pytest.raises(ValidationError):
        OcrPayload.model_validate({"artifact_id": "art_1", "language": "ro"})
