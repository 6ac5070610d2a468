"""RO e-Factura documents: a JSON invoice in, CIUS-RO UBL 2.1 XML out, validated offline.

    codes.py       CIUS-RO code lists, CUI and IBAN checks
    model.py       the invoice model (pydantic; rule ids in its errors)
    totals.py      EN 16931 sums with Decimal (BT-106..BT-115, the VAT breakdown)
    ubl.py         UBL 2.1 Invoice / CreditNote XML with lxml
    safe_xml.py    parsing untrusted XML (no DOCTYPE, no entities, no network)
    schematron.py  the compiled CIUS-RO Schematron run with Saxon, SVRL read back
    validate.py    XSD + Schematron, compiled once per process: ``validate(xml, root)``
    schemas.py     where the official schemas live (WORKERS_SCHEMAS_DIR)
    cli.py         the ``efactura`` click group (``validate``, ``build``)

Building and validating are pure functions of their input (CONVENTIONS §11); a task module
does the fetching and storing around them.
"""

from workers_core.efactura.codes import CIUS_RO_CUSTOMIZATION_ID, TypeCode, VatCategory
from workers_core.efactura.errors import MalformedXml, SchemasUnavailable, UnsafeXml
from workers_core.efactura.model import Invoice
from workers_core.efactura.schemas import schemas_root
from workers_core.efactura.totals import Totals, VatBreakdown, compute_totals
from workers_core.efactura.ubl import build_xml
from workers_core.efactura.validate import (
    ValidationIssue,
    ValidationReport,
    validate,
    validator_for,
)

__all__ = [
    "CIUS_RO_CUSTOMIZATION_ID",
    "Invoice",
    "MalformedXml",
    "SchemasUnavailable",
    "Totals",
    "TypeCode",
    "UnsafeXml",
    "ValidationIssue",
    "ValidationReport",
    "VatBreakdown",
    "VatCategory",
    "build_xml",
    "compute_totals",
    "schemas_root",
    "validate",
    "validator_for",
]
