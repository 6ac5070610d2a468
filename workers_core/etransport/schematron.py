"""The compiled e-Transport Schematron 2.0.2, made to visit attributes, run with Saxon.

Most e-Transport rules have an attribute as context (``//@uit`` BR-019, ``@codTipOperatiune``
BR-004..007, ``//@tipDocument`` BR-026 ...). The compiled XSL in shared/schemas was made by
the ISO skeleton with attributes not visited (``apply-templates select="*|comment()|…"``),
so as shipped those rules never fire and a wrong UIT passes. Before compiling we add an
``apply-templates select="@*"`` in front of each such select: the rules then fire as the
.sch states them. Saxon runs it and the SVRL is read back as e-Factura's are
(``efactura.schematron.SchematronRunner``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from workers_core.efactura.errors import SchemasUnavailable
from workers_core.efactura.schematron import SchematronRunner

_CHILDREN_ONLY: Final = re.compile(
    r'<xsl:apply-templates select="\*\|comment\(\)\|processing-instruction\(\)" mode="(M\d+)"/>'
)
_LOCATOR_ELEMENTS: Final = '<xsl:template match="*" mode="schematron-select-full-path">'
_LOCATOR_ANY: Final = '<xsl:template match="*|@*" mode="schematron-select-full-path">'


def visiting_attributes(xslt_text: str) -> str:
    """The compiled stylesheet with every pattern's traversal extended to attributes."""
    if not _CHILDREN_ONLY.search(xslt_text):
        raise SchemasUnavailable(
            "the e-Transport Schematron XSL has no traversal to extend; was it recompiled? "
            "(expected the ISO skeleton's apply-templates select)"
        )
    # Two selects, not ``@*|*``: Saxon 13's optimiser crashes the process on the union.
    text = _CHILDREN_ONLY.sub(
        lambda m: f'<xsl:apply-templates select="@*" mode="{m.group(1)}"/>{m.group(0)}', xslt_text
    )
    # The locator mode matches elements only: an attribute's location would be its value.
    return text.replace(_LOCATOR_ELEMENTS, _LOCATOR_ANY)


class EtransportSchematron(SchematronRunner):
    """The shipped stylesheet made to visit attributes, compiled once and reused."""

    def __init__(self, xslt: Path) -> None:
        try:
            text = xslt.read_text(encoding="utf-8")
        except OSError as exc:
            raise SchemasUnavailable(f"cannot read {xslt}: {exc}", path=str(xslt)) from exc
        super().__init__(xslt, "e-Transport", visiting_attributes(text))
