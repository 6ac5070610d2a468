"""`workers-core efactura`: build CIUS-RO invoices from JSON and validate UBL files offline.

Exit codes:
  0 every file is valid (warnings allowed)   3 a file failed XSD or CIUS-RO rules
  2 bad usage, an invalid invoice JSON        7 the schemas directory is missing
"""

from __future__ import annotations

import click

from workers_core.efactura.model import Invoice
from workers_core.efactura.ubl import build_xml
from workers_core.efactura.validate import ValidationReport, validate
from workers_core.schemas_cli import DocumentKind, add_document_commands


def _warnings(report: ValidationReport) -> str:
    return f" ({len(report.warnings)} warnings)" if report.warnings else ""


@click.group()
def efactura() -> None:
    """RO e-Factura (CIUS-RO 1.0.9): build UBL from JSON, validate XML offline.

    Schemas come from WORKERS_SCHEMAS_DIR (default ../shared/schemas next to the checkout).
    """


add_document_commands(
    efactura,
    DocumentKind("invoice", Invoice, build_xml, validate, _warnings),
    validate_help="""Validate UBL Invoice/CreditNote FILES against UBL 2.1 XSD and CIUS-RO rules.

    \b
    Examples:
      workers-core efactura validate factura.xml
      workers-core efactura validate --json out/*.xml | jq '.[] | select(.ok | not)'
    """,
    build_help="""Build the UBL XML for INVOICE_JSON, write it, then validate it.

    \b
    Example:
      workers-core efactura build factura.json -o factura.xml
    """,
)
