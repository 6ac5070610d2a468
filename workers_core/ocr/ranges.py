"""Page ranges ("1-3,5", "8-"): parsed when the payload is validated, applied to the document."""

from __future__ import annotations

import re

from workers_core.ocr.errors import PageOutOfRange, TooManyPages

PAGE_SPEC = re.compile(r"^\s*\d+\s*(-\s*\d*\s*)?(,\s*\d+\s*(-\s*\d*\s*)?)*$")


def parse_page_spec(spec: str) -> list[tuple[int, int | None]]:
    """``"1-3,5,8-"`` → ``[(1, 3), (5, 5), (8, None)]`` (1-based, inclusive, open end allowed)."""
    if not PAGE_SPEC.match(spec):
        raise ValueError(f"page range {spec!r} is not like '1-3,5' or '4-'")
    spans: list[tuple[int, int | None]] = []
    for part in spec.split(","):
        first, dash, last = (p.strip() for p in part.partition("-"))
        start = int(first)
        end = (int(last) if last else None) if dash else start
        if start < 1 or (end is not None and end < start):
            raise ValueError(f"page range {part.strip()!r} is empty or starts before page 1")
        spans.append((start, end))
    return spans


def select_pages(spec: str | None, page_count: int, max_pages: int) -> list[int]:
    """The page numbers to OCR, in document order; errors say what the document has."""
    spans = parse_page_spec(spec) if spec else [(1, None)]
    wanted: set[int] = set()
    for start, end in spans:
        last = page_count if end is None else end
        if start > page_count or last > page_count:
            raise PageOutOfRange(
                f"page {max(start, last)} was requested; the document has {page_count} page(s)",
                page_count=page_count,
            )
        wanted.update(range(start, last + 1))
    if len(wanted) > max_pages:
        raise TooManyPages(
            f"{len(wanted)} pages selected; at most {max_pages} per job "
            f"(WORKERS_OCR_MAX_PAGES): split the job with 'pages', e.g. '1-{max_pages}'",
            pages=len(wanted),
            max_pages=max_pages,
        )
    return sorted(wanted)
