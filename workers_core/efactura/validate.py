"""Validate a UBL invoice as ANAF does: UBL 2.1 XSD first, then the CIUS-RO 1.0.9 rules."""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path
from typing import Any, Literal

from lxml import etree  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, computed_field

from workers_core.efactura.errors import MalformedXml, SchemasUnavailable
from workers_core.efactura.safe_xml import parse_untrusted
from workers_core.efactura.schemas import EfacturaSchemas
from workers_core.efactura.schematron import SchematronRunner
from workers_core.efactura.ubl import CREDIT_NOTE_NS, INVOICE_NS

Document = Literal["Invoice", "CreditNote"]
# A UBL document's root tag -> which one it is (validation and the upload's identity).
DOCUMENTS: dict[str, Document] = {
    f"{{{INVOICE_NS}}}Invoice": "Invoice",
    f"{{{CREDIT_NOTE_NS}}}CreditNote": "CreditNote",
}


class ValidationIssue(BaseModel):
    """One broken rule: ``rule_id`` is the Schematron id (BR-RO-100) or ``XSD``."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    flag: Literal["fatal", "warning"]
    location: str
    text: str
    source: Literal["xsd", "schematron"]


class IssueReport(BaseModel):
    """Fatal issues in ``errors``, warnings apart; ``ok`` means the rules accept the document.
    The shape every validator here reports (e-Factura, e-Transport)."""

    errors: list[ValidationIssue]
    warnings: list[ValidationIssue]
    schematron_ran: bool
    elapsed_s: float

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.errors

    def rule_ids(self) -> list[str]:
        """Distinct rule ids of the errors, in order of first appearance."""
        return list(dict.fromkeys(issue.rule_id for issue in self.errors))

    @staticmethod
    def split(issues: list[ValidationIssue]) -> dict[str, list[ValidationIssue]]:
        """``errors`` and ``warnings`` keyword arguments from a list of issues."""
        return {
            "errors": [i for i in issues if i.flag == "fatal"],
            "warnings": [i for i in issues if i.flag == "warning"],
        }


class ValidationReport(IssueReport):
    document: Document


class CompiledXsd:
    """An XSD compiled once, from its file or from a tree read from it and adapted (SAF-T);
    validation is serialised (lxml validators keep an error log). Every XSD here is one."""

    def __init__(self, path: Path, tree: etree._ElementTree | None = None) -> None:
        parser = etree.XMLParser(no_network=True, resolve_entities=False)
        try:
            self._schema = etree.XMLSchema(
                etree.parse(str(path), parser) if tree is None else tree
            )
        except (etree.XMLSchemaParseError, etree.XMLSyntaxError, OSError) as exc:
            raise SchemasUnavailable(f"cannot load {path}: {exc}", path=str(path)) from exc
        self._lock = threading.Lock()

    def errors(self, node: etree._ElementTree | etree._Element) -> list[Any]:
        """libxml2's entries (``line``, ``path``, ``message``) for ``node``; [] when valid."""
        with self._lock:
            if self._schema.validate(node):
                return []
            return list(self._schema.error_log)

    def issues(self, tree: etree._ElementTree) -> list[ValidationIssue]:
        return [
            ValidationIssue(
                rule_id="XSD",
                flag="fatal",
                location=entry.path or f"line {entry.line}",
                text=f"line {entry.line}: {entry.message}",
                source="xsd",
            )
            for entry in self.errors(tree)
        ]


class InvoiceValidator:
    """The two compiled XSDs and the compiled Schematron: build once per process, then reuse."""

    def __init__(self, schemas: EfacturaSchemas) -> None:
        self._xsd = {
            "Invoice": CompiledXsd(schemas.invoice_xsd),
            "CreditNote": CompiledXsd(schemas.credit_note_xsd),
        }
        self._schematron = SchematronRunner(schemas.schematron_xslt)

    def validate(self, xml: bytes) -> ValidationReport:
        """A report for ``xml``; raises UnsafeXml/MalformedXml for what is not a UBL document."""
        started = time.perf_counter()
        tree = parse_untrusted(xml)
        document = DOCUMENTS.get(tree.getroot().tag)
        if document is None:
            raise MalformedXml(
                f"root element {tree.getroot().tag} is neither a UBL 2.1 Invoice nor CreditNote"
            )
        issues = self._xsd[document].issues(tree)
        # ANAF stops at the XSD too: the rules cast values with xs:decimal and would only
        # fail on a document whose types are already wrong.
        ran = not issues
        if ran:
            text = etree.tostring(tree, encoding="unicode")  # no DOCTYPE: vetted above
            issues = [
                ValidationIssue(
                    rule_id=f.rule_id,
                    flag=f.flag,
                    location=f.location,
                    text=f.text,
                    source="schematron",
                )
                for f in self._schematron.run(text)
            ]
        return ValidationReport(
            document=document,
            **IssueReport.split(issues),
            schematron_ran=ran,
            elapsed_s=time.perf_counter() - started,
        )


@functools.lru_cache(maxsize=4)
def validator_for(schemas_root: Path) -> InvoiceValidator:
    """The process's validator for a schemas directory (compiled on first use, ~1-2 s)."""
    return InvoiceValidator(EfacturaSchemas.under(schemas_root))


def validate(xml: bytes, schemas_root: Path) -> ValidationReport:
    """Validate one UBL Invoice or CreditNote against UBL 2.1 and CIUS-RO 1.0.9."""
    return validator_for(schemas_root.resolve()).validate(xml)
