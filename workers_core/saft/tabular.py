"""CSV and Parquet inputs, read a row at a time, as the records the JSON Lines files hold.

Accounting systems export flat tables, not nested JSON: one row per GL line (per invoice
line, per payment line), the parent's columns repeated on each of its rows, and nested
fields as dotted column names (``address.city``, ``line.tax.tax_code``). Consecutive rows
with the same parent fields form one record; a parent is never held longer than its rows.
A Parquet file may also carry the nested form itself (struct and list columns): a row that
already has ``lines`` is one record.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from workers_core.saft.errors import SaftInputError
from workers_core.saft.model import InputKind

TableFormat = Literal["csv", "parquet"]
LINE = "line"
# The field that names a record whose rows are its lines.
GROUPED_BY: dict[InputKind, str] = {
    "transactions": "transaction_id",
    "sales_invoices": "invoice_no",
    "purchase_invoices": "invoice_no",
    "payments": "payment_ref_no",
    "stock_movements": "reference",
}
# Records with lists of structures below their lines: no flat form, JSON Lines or nested
# Parquet only.
NESTED_ONLY: frozenset[InputKind] = frozenset({"assets", "asset_transactions"})
# Lines with a list of taxes: a row carries one, as ``line.tax.*`` columns.
ONE_TAX_PER_ROW: frozenset[InputKind] = frozenset({"transactions", "stock_movements"})
PARQUET_BATCH_ROWS = 4096
PARQUET_MAGIC = b"PAR1"


def nest(flat: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``{"address.city": "Cluj"}`` -> ``{"address": {"city": "Cluj"}}``; empty cells dropped
    (the model's default applies, as for a key left out of a JSON line)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None or value == "":
            continue
        if isinstance(value, float):  # Parquet doubles: their shortest repr, not binary noise
            value = Decimal(repr(value))
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SaftInputError(f"{where}: column {key!r} nests under a value {part!r}")
            node = child
        node[leaf] = value
    return out


def grouped(rows: Iterator[tuple[int, dict[str, Any]]], kind: InputKind,
            path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(first row number, record)``: rows folded into records with ``lines`` for the kinds
    that have lines; every row of its own for the rest."""
    key = GROUPED_BY.get(kind)
    parent: dict[str, Any] | None = None
    record: dict[str, Any] | None = None
    first = 0
    for number, row in rows:
        where = f"{path.name}:{number}"
        fields = nest(row, where)
        if key is None or "lines" in fields:
            if record is not None:
                yield first, record
                parent = record = None
            yield number, fields
            continue
        line = fields.pop(LINE, None)
        if not isinstance(line, dict):
            raise SaftInputError(f"{where}: a {kind} row needs its line's columns "
                                 f"({LINE}.account_id, ...)", file=str(path), line=number)
        if kind in ONE_TAX_PER_ROW and "tax" in line:
            line["taxes"] = [line.pop("tax")]
        if record is not None and fields == parent:
            record["lines"].append(line)
            continue
        if record is not None:
            if parent is not None and fields.get(key) == parent.get(key):
                changed = sorted(k for k in fields.keys() | parent.keys()
                                 if fields.get(k) != parent.get(k))
                raise SaftInputError(
                    f"{where}: {key} {fields.get(key)!r} repeats with other values of "
                    f"{', '.join(changed)} than on its first row ({first})",
                    file=str(path), line=number)
            yield first, record
        parent, record, first = fields, {**fields, "lines": [line]}, number
    if record is not None:
        yield first, record


def csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows by their line number in the file (the header is line 1); UTF-8, BOM tolerated."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            return
        for row in reader:
            if None in row:  # more cells than the header has names
                raise SaftInputError(f"{path.name}:{reader.line_num}: more cells than columns",
                                     file=str(path), line=reader.line_num)
            if any(row.values()):
                yield reader.line_num, row


def parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows by their 1-based index, a batch at a time (never the whole file)."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise SaftInputError(f"{path.name}: reading Parquet needs pyarrow "
                             "(pip install 'workers-core[parquet]')", file=str(path)) from exc
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid / OSError kinds
        raise SaftInputError(f"{path.name}: not a Parquet file ({exc})", file=str(path)
                             ) from exc
    number = 0
    with parquet:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                number += 1
                yield number, row


def table_records(path: Path, fmt: TableFormat,
                  kind: InputKind) -> Iterator[tuple[int, dict[str, Any]]]:
    if fmt == "csv" and kind in NESTED_ONLY:
        raise SaftInputError(f"{path.name}: {kind} have no flat form: give {kind}.jsonl or a "
                             "Parquet file with nested columns", file=str(path))
    rows = csv_rows(path) if fmt == "csv" else parquet_rows(path)
    return grouped(rows, kind, path)


def flatten(record: Mapping[str, Any], kind: InputKind) -> Iterator[dict[str, Any]]:
    """A record as its rows (the inverse of :func:`grouped`): a row per line for the kinds
    with lines, the parent's columns repeated on each."""
    fields = _dotted(record)
    if GROUPED_BY.get(kind) is None:
        yield fields
        return
    parent = {k: v for k, v in fields.items() if not k.startswith("lines")}
    for line in record["lines"]:
        line = dict(line)
        if kind in ONE_TAX_PER_ROW:
            taxes = line.pop("taxes", None) or []
            if len(taxes) > 1:
                raise SaftInputError(f"{kind}: a table row carries one tax; "
                                     f"{record.get(GROUPED_BY[kind])} has {len(taxes)}")
            if taxes:
                line["tax"] = taxes[0]
        yield {**parent, **_dotted(line, LINE + ".")}


def _dotted(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            out.update(_dotted(value, f"{prefix}{key}."))
        elif not isinstance(value, list) or prefix:
            out[prefix + key] = value
        elif key != "lines":
            raise SaftInputError(f"{prefix}{key}: a list cannot be a table column")
    return out


def write_table(path: Path, fmt: TableFormat, rows: Iterator[dict[str, Any]],
                columns: list[str]) -> int:
    """Write ``rows`` (``columns`` in order; missing cells empty), streamed; count them.
    Parquet columns are strings, read back through the same models as CSV cells."""
    count = 0
    if fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "" if v is None else v for k, v in row.items()})
                count += 1
        return count
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, pa.string()) for name in columns])
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append({k: None if row.get(k) is None else str(row[k]) for k in columns})
            count += 1
            if len(batch) == PARQUET_BATCH_ROWS:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return count


def convert_jsonl(source: Path, target: Path, fmt: TableFormat, kind: InputKind) -> int:
    """A ``<kind>.jsonl`` as CSV or Parquet rows: two passes (the columns, then the rows),
    one record in memory at a time. Returns the number of rows written."""
    def records() -> Iterator[dict[str, Any]]:
        with source.open("rb") as lines:
            for raw in lines:
                if raw.strip():
                    yield json.loads(raw)

    columns: dict[str, None] = {}
    for record in records():
        for row in flatten(record, kind):
            columns.update(dict.fromkeys(row))
    return write_table(target, fmt, (row for r in records() for row in flatten(r, kind)),
                       list(columns))
