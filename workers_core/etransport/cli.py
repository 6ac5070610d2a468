"""`workers-core etransport`: build e-Transport v2 declarations from JSON, validate XML offline.

Exit codes:
  0 every file is valid (warnings allowed)   3 a file failed the XSD or the Schematron
  2 bad usage, an invalid declaration JSON   7 the schemas directory is missing
"""

from __future__ import annotations

import click

from workers_core.etransport.document import build_xml
from workers_core.etransport.model import Declaration
from workers_core.etransport.validate import EtransportReport, validate
from workers_core.schemas_cli import DocumentKind, add_document_commands


def _kind(report: EtransportReport) -> str:
    return f" ({report.kind})"


@click.group()
def etransport() -> None:
    """RO e-Transport (XSD v2, Schematron 2.0.2): build XML from JSON, validate offline.

    Schemas come from WORKERS_SCHEMAS_DIR (default ../shared/schemas next to the checkout).
    """


add_document_commands(
    etransport,
    DocumentKind("declaration", Declaration, build_xml, validate, _kind),
    validate_help="""Validate e-Transport v2 FILES against the XSD and the Schematron rules.

    \b
    Examples:
      workers-core etransport validate notificare.xml
      workers-core etransport validate --json out/*.xml | jq '.[] | select(.ok | not)'
    """,
    build_help="""Build the v2 XML for DECLARATION_JSON, write it, then validate it.

    \b
    Example:
      workers-core etransport build decl.json -o decl.xml
    """,
)
