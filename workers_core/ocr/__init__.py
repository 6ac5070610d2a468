"""OCR for scanned documents (the ``ocr.extract`` task): pages in, ordered text lines out.

    errors.py      the OCR error family (light: clients import it)
    ranges.py      page ranges "1-3,5" (light)
    text.py        cedilla → comma-below, reading order (light)
    engine.py      the engine protocol, thread and GPU choices, the factory (light)
    pages.py       sniff PDF/PNG/JPEG/TIFF, rasterise one page at a time (pypdfium2, Pillow)
    rapid.py       RapidOCR (default; models ship in the wheel)
    paddle.py      PaddleOCR (optional; local models only)
    searchable.py  image + invisible text layer PDF (pypdfium2)
    pipeline.py    one document through all of the above, in a worker thread

Only the light modules are re-exported here, so ``import workers_core.ocr`` works without
the ``ocr`` extra (rapidocr, onnxruntime, pypdfium2, pillow); import the others by name.
"""

from workers_core.ocr.engine import (
    OcrEngine,
    RecognisedLine,
    load_engine,
    onnx_providers,
    onnx_threads,
    wants_gpu,
)
from workers_core.ocr.errors import (
    EngineUnavailable,
    PageOutOfRange,
    TooManyPages,
    UnreadableDocument,
    UnsupportedDocument,
)
from workers_core.ocr.ranges import parse_page_spec, select_pages
from workers_core.ocr.text import normalise_text, reading_order

__all__ = [
    "EngineUnavailable",
    "OcrEngine",
    "PageOutOfRange",
    "RecognisedLine",
    "TooManyPages",
    "UnreadableDocument",
    "UnsupportedDocument",
    "load_engine",
    "normalise_text",
    "onnx_providers",
    "onnx_threads",
    "parse_page_spec",
    "reading_order",
    "select_pages",
    "wants_gpu",
]
