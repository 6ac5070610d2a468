"""What the document command groups (``efactura``, ``etransport``, ``saft``) share: exit
codes, the error line, the schemas directory or a clear exit when it is missing, and the
``validate`` / ``build`` commands of an XML document kind.

Exit codes: 0 valid (warnings allowed), 2 bad usage or invalid JSON, 3 a file failed the
XSD or the rules, 7 the schemas directory is missing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import BaseModel, ValidationError

from workers_core.config import Settings
from workers_core.efactura.errors import MalformedXml, SchemasUnavailable, UnsafeXml
from workers_core.efactura.schemas import schemas_root
from workers_core.efactura.validate import IssueReport

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


@dataclass(frozen=True)
class DocumentKind:
    """An XML document the CLI builds from JSON and validates offline."""

    noun: str  # "invoice", "declaration": in messages
    model: type[BaseModel]
    build: Callable[[Any], bytes]
    validate: Callable[[bytes, Path], IssueReport]
    ok_detail: Callable[[Any], str]  # what follows "ok" for a valid report

    def check(self, xml: bytes, root: Path) -> IssueReport | str:
        """The report, or why the document could not be validated at all."""
        try:
            return self.validate(xml, root)
        except (UnsafeXml, MalformedXml) as exc:
            return exc.message
        except SchemasUnavailable as exc:
            fail(EXIT_UNAVAILABLE, exc.message)

    def echo(self, name: str, outcome: IssueReport | str) -> None:
        if isinstance(outcome, str):
            click.echo(f"{name}: refused: {outcome}")
        elif outcome.ok:
            click.echo(f"{name}: ok{self.ok_detail(outcome)}")
        else:
            click.echo(f"{name}: failed {' '.join(outcome.rule_ids())}")
            for issue in outcome.errors:
                click.echo(f"  {issue.rule_id} at {issue.location}")


def _as_json(name: str, outcome: IssueReport | str) -> dict[str, Any]:
    if isinstance(outcome, str):
        return {"file": name, "ok": False, "refused": outcome}
    return {"file": name, **outcome.model_dump(mode="json")}


def add_document_commands(
    group: click.Group, kind: DocumentKind, *, validate_help: str, build_help: str
) -> None:
    """``validate FILES... [--json]`` and ``build JSON [-o XML]`` for ``kind`` on ``group``."""

    @group.command("validate", help=validate_help)
    @click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
    @click.option("--json", "as_json", is_flag=True, help="One JSON report per file, as a list.")
    def validate_cmd(files: tuple[str, ...], as_json: bool) -> None:
        root = schemas_or_exit()
        outcomes = [(name, kind.check(Path(name).read_bytes(), root)) for name in files]
        if as_json:
            reports = [_as_json(n, o) for n, o in outcomes]
            click.echo(json.dumps(reports, indent=2, ensure_ascii=False))
        else:
            for name, outcome in outcomes:
                kind.echo(name, outcome)
        failed = any(isinstance(o, str) or not o.ok for _, o in outcomes)
        sys.exit(EXIT_INVALID if failed else EXIT_OK)

    @group.command("build", help=build_help)
    @click.argument(
        "source", metavar=f"{kind.noun.upper()}_JSON", type=click.Path(exists=True, dir_okay=False)
    )
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, writable=True),
        help="Where to write the XML (default: the JSON's name with .xml).",
    )
    def build_cmd(source: str, output: str | None) -> None:
        try:
            document = kind.model.model_validate_json(Path(source).read_bytes())
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(part) for part in err["loc"]) or f"({kind.noun})"
                click.echo(f"  {where}: {err['msg']}", err=True)
            fail(EXIT_USAGE, f"{source} is not a valid {kind.noun}")
        xml = kind.build(document)
        target = Path(output) if output else Path(source).with_suffix(".xml")
        target.write_bytes(xml)
        click.echo(f"wrote {target}")
        outcome = kind.check(xml, schemas_or_exit())
        kind.echo(str(target), outcome)
        sys.exit(EXIT_OK if isinstance(outcome, IssueReport) and outcome.ok else EXIT_INVALID)
