"""Text clean-up and reading order for recognised lines (pure functions)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

BBox = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels, y downwards

# Romanian uses comma-below ș ț (U+0219/U+021B); OCR models and old encodings (ISO 8859-2,
# Windows-1250) give the cedilla forms ş ţ, which break search and e-Factura matching.
CEDILLA_TO_COMMA = str.maketrans(
    {
        "\u015f": "\u0219",  # ş → ș
        "\u0163": "\u021b",  # ţ → ț
        "\u015e": "\u0218",  # Ş → Ș
        "\u0162": "\u021a",  # Ţ → Ț
    }
)


def normalise_text(text: str) -> str:
    """NFC (precomposed diacritics) with Romanian comma-below letters, trimmed."""
    return unicodedata.normalize("NFC", text).translate(CEDILLA_TO_COMMA).strip()


def bbox_of(points: Sequence[Sequence[float]]) -> BBox:
    """Axis-aligned box around a quadrilateral."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def reading_order(boxes: Sequence[BBox], tolerance: float = 0.5) -> list[list[int]]:
    """Group boxes into rows, top to bottom, each row left to right; returns indices.

    A box joins the current row when its vertical centre is within ``tolerance`` times the
    smaller of its height and the row's height: a label and its value detected as two boxes
    ("Total de plată:" … "1.234,56 lei") end up on one row even when slightly skewed.
    """
    order = sorted(range(len(boxes)), key=lambda i: (_centre(boxes[i]), boxes[i][0]))
    rows: list[list[int]] = []
    row_centre = row_height = 0.0
    for i in order:
        centre, height = _centre(boxes[i]), boxes[i][3] - boxes[i][1]
        if rows and abs(centre - row_centre) <= tolerance * min(height, row_height):
            rows[-1].append(i)
            members = len(rows[-1])
            row_centre += (centre - row_centre) / members  # running mean
            row_height += (height - row_height) / members
        else:
            rows.append([i])
            row_centre, row_height = centre, height
    return [sorted(row, key=lambda i: boxes[i][0]) for row in rows]


def join_rows(rows: Sequence[Sequence[str]]) -> str:
    """Boxes of a row joined by a space, rows by a newline."""
    return "\n".join(" ".join(row) for row in rows)


def _centre(box: BBox) -> float:
    return (box[1] + box[3]) / 2
