"""`workers-core saft`: generate a D406 (SAF-T) XML from JSON Lines and validate D406 files.

Exit codes:
  0 every file is valid                       3 a file broke the XSD or a business rule
  2 bad usage, bad input data                 7 the schemas directory is missing
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from workers_core.saft.errors import MalformedXml, SaftInputError, SchemasUnavailable, UnsafeXml
from workers_core.saft.inputs import input_path
from workers_core.saft.model import INPUT_FILES, DeclarationKind
from workers_core.saft.sample import write_sample
from workers_core.saft.tabular import NESTED_ONLY, convert_jsonl
from workers_core.saft.validate import SaftReport, validate_file
from workers_core.saft.writer import generate
from workers_core.schemas_cli import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    fail,
    schemas_or_exit,
)


def _check(path: Path, root: Path) -> SaftReport | str:
    """The report, or why the file could not be validated at all."""
    try:
        return validate_file(path, root)
    except (UnsafeXml, MalformedXml) as exc:
        return exc.message
    except SchemasUnavailable as exc:
        fail(EXIT_UNAVAILABLE, exc.message)


def _echo(name: str, outcome: SaftReport | str) -> None:
    if isinstance(outcome, str):
        click.echo(f"{name}: refused: {outcome}")
        return
    if outcome.ok:
        click.echo(
            f"{name}: ok ({outcome.gl_lines} GL lines, {outcome.transactions} "
            f"transactions, type {outcome.declaration_kind})"
        )
        return
    click.echo(f"{name}: failed {' '.join(outcome.rules())}")
    for v in outcome.violations:
        line = f" (line {v.line})" if v.line else ""
        click.echo(f"  {v.rule} at {v.location}{line}: {v.message}")
    if outcome.dropped:
        click.echo(f"  ... and {outcome.dropped} more")


def _as_json(name: str, outcome: SaftReport | str) -> dict[str, Any]:
    if isinstance(outcome, str):
        return {"file": name, "ok": False, "refused": outcome}
    return outcome.model_dump(mode="json")


@click.group()
def saft() -> None:
    """SAF-T (D406): generate the XML from JSON Lines, validate files offline.

    Schemas come from WORKERS_SCHEMAS_DIR (default ../shared/schemas next to the checkout).
    """


@saft.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON report per file, as a list.")
def validate_cmd(files: tuple[str, ...], as_json: bool) -> None:
    """Validate D406 FILES (streaming): the XSD plus balance, partner-id and period rules.

    \b
    Examples:
      workers-core saft validate d406_2025_01.xml
      workers-core saft validate --json out/*.xml | jq '.[] | select(.ok | not)'
    """
    root = schemas_or_exit()
    outcomes = [(name, _check(Path(name), root)) for name in files]
    if as_json:
        click.echo(json.dumps([_as_json(n, o) for n, o in outcomes], indent=2, ensure_ascii=False))
    else:
        for name, outcome in outcomes:
            _echo(name, outcome)
    failed = any(isinstance(o, str) or not o.ok for _, o in outcomes)
    sys.exit(EXIT_INVALID if failed else EXIT_OK)


@saft.command("generate")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="Where to write the D406 XML.",
)
@click.option("--no-validate", is_flag=True, help="Write only; skip the validation pass.")
def generate_cmd(data_dir: str, output: str, no_validate: bool) -> None:
    """Write the D406 XML for DATA_DIR (header.json + <kind>.jsonl files), then validate it.

    \b
    Example:
      workers-core saft sample data/ --lines 1000
      workers-core saft generate data/ -o d406.xml
    """
    root = None if no_validate else schemas_or_exit()
    target = Path(output)
    try:
        summary = generate(Path(data_dir), target)
    except SaftInputError as exc:
        fail(EXIT_USAGE, exc.message)
    click.echo(f"wrote {target} ({summary.gl_lines} GL lines)")
    if root is None:
        sys.exit(EXIT_OK)
    outcome = _check(target, root)
    _echo(str(target), outcome)
    sys.exit(EXIT_OK if isinstance(outcome, SaftReport) and outcome.ok else EXIT_INVALID)


@saft.command("sample")
@click.argument("data_dir", type=click.Path(file_okay=False))
@click.option("--lines", default=1000, show_default=True, help="GL lines (at least 6).")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--kind", type=click.Choice([k.value for k in DeclarationKind]), default="L", show_default=True
)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]),
              default="jsonl", show_default=True,
              help="csv/parquet: a row per GL/invoice/payment line, dotted column names.")
def sample_cmd(data_dir: str, lines: int, seed: int, kind: str, fmt: str) -> None:
    """Write deterministic fake data for one company (balanced) into DATA_DIR.

    \b
    Example:
      workers-core saft sample /tmp/d406 --lines 200000
      workers-core saft sample /tmp/d406csv --lines 1000 --format csv
    """
    if lines < 6:
        fail(EXIT_USAGE, "--lines must be at least 6")
    target = Path(data_dir)
    write_sample(target, lines, seed=seed, kind=DeclarationKind(kind))
    if fmt != "jsonl":
        for kind_name in INPUT_FILES:
            source = input_path(target, kind_name, "jsonl")
            if source.is_file() and kind_name not in NESTED_ONLY:
                convert_jsonl(source, input_path(target, kind_name, fmt),  # type: ignore[arg-type]
                              fmt, kind_name)  # type: ignore[arg-type]
                source.unlink()
    click.echo(f"wrote {data_dir}")
