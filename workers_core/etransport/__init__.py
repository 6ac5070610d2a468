"""RO e-Transport declarations: JSON in, v2 XML out, validated offline; the UIT check.

    codes.py          code lists (operations, purposes, documents) and the UIT check (BR-019)
    model.py          the declaration model (pydantic; rule ids in its errors)
    document.py       the v2 XML (``mfp:anaf:dgti:eTransport:declaratie:v2``) with lxml
    schematron.py     the compiled Schematron 2.0.2, made to visit attributes, run with Saxon
    validate.py       XSD + Schematron, compiled once per process: ``validate(xml, root)``
    applicability.py  does a shipment need e-Transport (thresholds, risk list, international)
    submission.py     upload at most once per shipment, lookup after a lost answer, polling
    cli.py            the ``etransport`` click group (``validate``, ``build``)

Building and validating are pure functions of their input (CONVENTIONS §11).
"""

from workers_core.etransport.applicability import (
    Applicability,
    Shipment,
    ShipmentLine,
    needs_etransport,
)
from workers_core.etransport.codes import (
    DocumentType,
    OperationType,
    uit_check_digits,
    uit_is_valid,
)
from workers_core.etransport.document import build_xml
from workers_core.etransport.model import Declaration, Notification
from workers_core.etransport.validate import EtransportReport, validate, validator_for

__all__ = [
    "Applicability",
    "Declaration",
    "DocumentType",
    "EtransportReport",
    "Notification",
    "OperationType",
    "Shipment",
    "ShipmentLine",
    "build_xml",
    "needs_etransport",
    "uit_check_digits",
    "uit_is_valid",
    "validate",
    "validator_for",
]
