"""Read a data directory's inputs one record at a time (never a whole file).

Each kind is one file: ``<kind>.jsonl`` (a record per line), ``<kind>.csv`` or
``<kind>.parquet`` (a row per line of a record, see :mod:`workers_core.saft.tabular`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from workers_core.saft.errors import SaftInputError
from workers_core.saft.model import INPUT_FILES, FileHeader, InputKind
from workers_core.saft.tabular import TableFormat, table_records

RecordT = TypeVar("RecordT", bound=BaseModel)

HEADER_FILE = "header.json"


InputFormat = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[InputFormat, ...] = ("jsonl", "csv", "parquet")


def input_path(data_dir: Path, kind: InputKind, fmt: InputFormat | None = None) -> Path:
    """The file of ``kind`` in ``fmt``; without ``fmt``, the one present (JSON Lines when
    none is). Two formats of one kind are refused: which one is meant is not guessed."""
    if fmt is not None:
        return data_dir / f"{kind}.{fmt}"
    present = [data_dir / f"{kind}.{f}" for f in FORMATS if (data_dir / f"{kind}.{f}").is_file()]
    if len(present) > 1:
        raise SaftInputError(f"{data_dir}: {' and '.join(p.name for p in present)} both hold "
                             f"{kind}: keep one", file=str(present[0]))
    return present[0] if present else data_dir / f"{kind}.jsonl"


def read_header(data_dir: Path) -> FileHeader:
    path = data_dir / HEADER_FILE
    try:
        return FileHeader.model_validate_json(path.read_bytes())
    except FileNotFoundError as exc:
        raise SaftInputError(f"{path} is missing", file=str(path)) from exc
    except ValidationError as exc:
        raise SaftInputError(f"{path}: {_first_error(exc)}", file=str(path)) from exc


def read_records(data_dir: Path, kind: InputKind) -> Iterator[tuple[int, BaseModel]]:
    """``(line number, record)`` for each non-blank line; a missing file reads as empty."""
    path = input_path(data_dir, kind)
    if not path.is_file():
        return
    model = INPUT_FILES[kind]
    jsonl = path.suffix == ".jsonl"
    fmt: TableFormat = "csv" if path.suffix == ".csv" else "parquet"
    rows: Iterator[tuple[int, Any]] = (
        _jsonl_lines(path) if jsonl else table_records(path, fmt, kind)
    )
    check: Callable[[Any], BaseModel] = (
        model.model_validate_json if jsonl else model.model_validate
    )
    for number, data in rows:
        try:
            yield number, check(data)
        except ValidationError as exc:
            raise SaftInputError(
                f"{path.name}:{number}: {_first_error(exc)}", file=str(path), line=number
            ) from exc


def _jsonl_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if raw.strip():
                yield number, raw


def read_typed(data_dir: Path, kind: InputKind, model: type[RecordT]) -> Iterator[RecordT]:
    """The records of ``kind`` as ``model`` (what :data:`INPUT_FILES` maps it to)."""
    for _, record in read_records(data_dir, kind):
        assert isinstance(record, model)
        yield record


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    err = errors[0]
    where = ".".join(str(part) for part in err["loc"]) or "(record)"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {err['msg']}{more}"
