"""Read a data directory's JSON Lines one record at a time (never a whole file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from workers_core.saft.errors import SaftInputError
from workers_core.saft.model import INPUT_FILES, FileHeader, InputKind

RecordT = TypeVar("RecordT", bound=BaseModel)

HEADER_FILE = "header.json"


def input_path(data_dir: Path, kind: InputKind) -> Path:
    return data_dir / f"{kind}.jsonl"


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
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                yield number, model.model_validate_json(raw)
            except ValidationError as exc:
                raise SaftInputError(
                    f"{path.name}:{number}: {_first_error(exc)}", file=str(path), line=number
                ) from exc


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
