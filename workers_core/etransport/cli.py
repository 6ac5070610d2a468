"""`workers-core etransport`: build e-Transport v2 declarations from JSON, validate XML offline.

Exit codes:
  0 every file is valid (warnings allowed)   3 a file failed the XSD or the Schematron
  2 bad usage, an invalid declaration JSON   7 the schemas directory is missing
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from workers_core.efactura.errors import MalformedXml, SchemasUnavailable, UnsafeXml
from workers_core.etransport.document import build_xml
from workers_core.etransport.model import Declaration
from workers_core.etransport.validate import EtransportReport, validate
from workers_core.schemas_cli import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    fail,
    schemas_or_exit,
)


def _check(xml: bytes, root: Path) -> EtransportReport | str:
    """The report, or why the document could not be validated at all."""
    try:
        return validate(xml, root)
    except (UnsafeXml, MalformedXml) as exc:
        return exc.message
    except SchemasUnavailable as exc:
        fail(EXIT_UNAVAILABLE, exc.message)


def _echo_report(name: str, outcome: EtransportReport | str) -> None:
    if isinstance(outcome, str):
        click.echo(f"{name}: refused: {outcome}")
    elif outcome.ok:
        click.echo(f"{name}: ok ({outcome.kind})")
    else:
        click.echo(f"{name}: failed {' '.join(outcome.rule_ids())}")
        for issue in outcome.errors:
            click.echo(f"  {issue.rule_id} at {issue.location}")


def _as_json(name: str, outcome: EtransportReport | str) -> dict[str, Any]:
    if isinstance(outcome, str):
        return {"file": name, "ok": False, "refused": outcome}
    return {"file": name, **outcome.model_dump(mode="json")}


@click.group()
def etransport() -> None:
    """RO e-Transport (XSD v2, Schematron 2.0.2): build XML from JSON, validate offline.

    Schemas come from WORKERS_SCHEMAS_DIR (default ../shared/schemas next to the checkout).
    """


@etransport.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON report per file, as a list.")
def validate_cmd(files: tuple[str, ...], as_json: bool) -> None:
    """Validate e-Transport v2 FILES against the XSD and the Schematron rules.

    \b
    Examples:
      workers-core etransport validate notificare.xml
      workers-core etransport validate --json out/*.xml | jq '.[] | select(.ok | not)'
    """
    root = schemas_or_exit()
    outcomes = [(name, _check(Path(name).read_bytes(), root)) for name in files]
    if as_json:
        click.echo(json.dumps([_as_json(n, o) for n, o in outcomes], indent=2, ensure_ascii=False))
    else:
        for name, outcome in outcomes:
            _echo_report(name, outcome)
    failed = any(isinstance(o, str) or not o.ok for _, o in outcomes)
    sys.exit(EXIT_INVALID if failed else EXIT_OK)


@etransport.command("build")
@click.argument("declaration_json", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Where to write the XML (default: the JSON's name with .xml).",
)
def build_cmd(declaration_json: str, output: str | None) -> None:
    """Build the v2 XML for DECLARATION_JSON, write it, then validate it.

    \b
    Example:
      workers-core etransport build decl.json -o decl.xml
    """
    try:
        declaration = Declaration.model_validate_json(Path(declaration_json).read_bytes())
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"]) or "(declaration)"
            click.echo(f"  {where}: {err['msg']}", err=True)
        fail(EXIT_USAGE, f"{declaration_json} is not a valid declaration")
    xml = build_xml(declaration)
    target = Path(output) if output else Path(declaration_json).with_suffix(".xml")
    target.write_bytes(xml)
    click.echo(f"wrote {target}")
    outcome = _check(xml, schemas_or_exit())
    _echo_report(str(target), outcome)
    sys.exit(EXIT_OK if isinstance(outcome, EtransportReport) and outcome.ok else EXIT_INVALID)
