"""What the document command groups (``efactura``, ``etransport``, ``saft``) share: exit
codes, the error line, and the schemas directory or a clear exit when it is missing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from workers_core.config import Settings
from workers_core.efactura.errors import SchemasUnavailable
from workers_core.efactura.schemas import schemas_root

EXIT_OK, EXIT_USAGE, EXIT_INVALID, EXIT_UNAVAILABLE = 0, 2, 3, 7


def fail(code: int, message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def schemas_or_exit() -> Path:
    """``WORKERS_SCHEMAS_DIR`` (or the default beside the checkout), else exit 7 saying why."""
    try:
        return schemas_root(Settings())
    except SchemasUnavailable as exc:
        fail(EXIT_UNAVAILABLE, exc.message)
