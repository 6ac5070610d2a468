"""Validate an e-Transport declaration as ANAF does: XSD v2 first, then Schematron 2.0.2.

The schemas directory is the e-Factura one (``WORKERS_SCHEMAS_DIR``); the Schematron runs
compiled to XSLT, run with Saxon (``etransport.schematron``: made to visit attributes).
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lxml import etree  # type: ignore[import-untyped]

from workers_core.efactura.errors import MalformedXml
from workers_core.efactura.safe_xml import parse_untrusted
from workers_core.efactura.schemas import required_file
from workers_core.efactura.schematron import Finding
from workers_core.efactura.validate import CompiledXsd, IssueReport, ValidationIssue
from workers_core.etransport.document import NS
from workers_core.etransport.schematron import EtransportSchematron

XSD_NAME: Final = "schema_ETR_v2.xsd"
SCHEMATRON_NAME: Final = "eTransport-validation_v2.0.2.compiled.xsl"
# Two asserts of 2.0.2 (BR-216, BR-217) close their tag early: their id lands in the text.
_RULE_IN_TEXT = re.compile(r"\[(BR-[0-9A-Z-]+)\]")


@dataclass(frozen=True, slots=True)
class EtransportSchemas:
    """The XSD and the compiled Schematron, checked to exist when resolved."""

    xsd: Path
    schematron_xslt: Path

    @classmethod
    def under(cls, root: Path) -> EtransportSchemas:
        base = root / "anaf" / "etransport"
        must = "hold anaf/etransport/ (see shared/schemas/README.md)"
        return cls(xsd=required_file(base / XSD_NAME, must),
                   schematron_xslt=required_file(base / SCHEMATRON_NAME, must))


class EtransportReport(IssueReport):
    kind: str  # notificare, stergere, confirmare, modifVehicul


class DeclarationValidator:
    """The compiled XSD and Schematron: build once per process, then reuse."""

    def __init__(self, schemas: EtransportSchemas) -> None:
        self._xsd = CompiledXsd(schemas.xsd)
        self._schematron = EtransportSchematron(schemas.schematron_xslt)

    def validate(self, xml: bytes) -> EtransportReport:
        """A report for ``xml``; raises UnsafeXml/MalformedXml for what is not a declaration."""
        started = time.perf_counter()
        tree = parse_untrusted(xml)
        root = tree.getroot()
        if root.tag != f"{{{NS}}}eTransport":
            raise MalformedXml(f"root element {root.tag} is not an e-Transport v2 eTransport")
        child = next((c for c in root if isinstance(c.tag, str)), None)
        kind = etree.QName(child).localname if child is not None else ""
        issues = self._xsd.issues(tree)
        ran = not issues  # the rules cast with xs:decimal: only on a document typed right
        if ran:
            text = etree.tostring(tree, encoding="unicode")  # no DOCTYPE: vetted above
            issues = [_issue(f) for f in self._schematron.run(text)]
        return EtransportReport(
            kind=kind,
            **IssueReport.split(issues),
            schematron_ran=ran,
            elapsed_s=time.perf_counter() - started,
        )


def _issue(finding: Finding) -> ValidationIssue:
    rule_id = finding.rule_id
    if not rule_id.startswith("BR-"):
        match = _RULE_IN_TEXT.search(finding.text)
        rule_id = match.group(1) if match else rule_id or "SCHEMATRON"
    return ValidationIssue(
        rule_id=rule_id,
        flag=finding.flag,
        location=finding.location,
        text=finding.text,
        source="schematron",
    )


@functools.lru_cache(maxsize=4)
def validator_for(schemas_root: Path) -> DeclarationValidator:
    """The process's validator for a schemas directory (compiled on first use)."""
    return DeclarationValidator(EtransportSchemas.under(schemas_root))


def validate(xml: bytes, schemas_root: Path) -> EtransportReport:
    """Validate one e-Transport v2 declaration against the XSD and Schematron 2.0.2."""
    return validator_for(schemas_root.resolve()).validate(xml)
