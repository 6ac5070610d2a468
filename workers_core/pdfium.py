"""PDFium (through pypdfium2), shared by OCR and PDF rendering.

PDFium is not thread-safe, not even across documents, so every call into it in this process
goes through ``PDFIUM_LOCK`` (pypdfium2 docs, "Python API"). pypdfium2 is imported lazily:
the catalog imports every task module, including in processes that never touch a PDF.
"""

from __future__ import annotations

import threading
from typing import Any

PDFIUM_LOCK = threading.Lock()


def pdfium() -> Any:
    """The pypdfium2 module; ImportError (with its ``name``) when it is not installed."""
    import pypdfium2  # type: ignore[import-untyped]

    return pypdfium2


def page_count(pdf: bytes) -> int:
    """Pages in a PDF, as PDFium (what a viewer) counts them."""
    module = pdfium()
    with PDFIUM_LOCK:
        document = module.PdfDocument(pdf)
        try:
            return len(document)
        finally:
            document.close()
