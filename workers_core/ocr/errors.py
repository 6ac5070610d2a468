"""What can go wrong in OCR, importable without the ``ocr`` extra (clients catch these).

NonRetryable (workers_core.errors)
├── UnsupportedDocument   not a PDF, PNG, JPEG or TIFF (the type is named)
├── UnreadableDocument    the right type but broken, truncated or encrypted
├── TooManyPages          more pages selected than WORKERS_OCR_MAX_PAGES
└── PageOutOfRange        a requested page past the end of the document
WorkersError
└── EngineUnavailable     engine, package, models or font missing: a deployment fault
"""

from __future__ import annotations

from workers_core.errors import NonRetryable, WorkersError


class UnsupportedDocument(NonRetryable):
    problem_type = "unsupported-document"


class UnreadableDocument(NonRetryable):
    problem_type = "unreadable-document"


class TooManyPages(NonRetryable):
    problem_type = "too-many-pages"


class PageOutOfRange(NonRetryable):
    problem_type = "page-out-of-range"


class EngineUnavailable(WorkersError):
    """The configured engine, its package or its models are missing: fix the deployment."""

    status_code = 503
    problem_type = "ocr-engine-unavailable"
    retryable = False
