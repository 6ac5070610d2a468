"""The compiled CIUS-RO Schematron (XSLT 2.0) run with Saxon, its SVRL read back as issues."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from saxonche import PySaxonApiError, PySaxonProcessor  # type: ignore[import-not-found]

from workers_core.efactura.errors import MalformedXml, SchemasUnavailable
from workers_core.efactura.safe_xml import parse_trusted

SVRL = "http://purl.oclc.org/dsdl/svrl"
Flag = Literal["fatal", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    """A failed assertion or a successful report (BR-RO-100 and kin are written as reports)."""

    rule_id: str
    flag: Flag
    location: str
    text: str


class SchematronRunner:
    """One compiled stylesheet, reused: compiling the 1 MB XSLT takes about a second. Given
    ``stylesheet`` (text adapted from ``xslt``, e-Transport), that is compiled instead."""

    def __init__(self, xslt: Path, rules: str = "CIUS-RO", stylesheet: str | None = None) -> None:
        self._rules = rules
        # One processor per validator, never released: releasing tears down Saxon's isolate.
        self._processor = PySaxonProcessor(license=False)
        try:
            compiler = self._processor.new_xslt30_processor()
            if stylesheet is None:
                self._executable = compiler.compile_stylesheet(stylesheet_file=str(xslt))
            else:
                compiler.set_cwd(str(xslt.parent))
                self._executable = compiler.compile_stylesheet(
                    stylesheet_text=stylesheet, encoding="utf-8"
                )
        except PySaxonApiError as exc:
            raise SchemasUnavailable(f"cannot compile {xslt}: {exc}", path=str(xslt)) from exc
        # Saxon's executables keep per-transform state; one document at a time.
        self._lock = threading.Lock()

    def run(self, xml_text: str) -> list[Finding]:
        """Findings for a document already vetted by ``safe_xml`` (serialised without DTD)."""
        with self._lock:
            try:
                node = self._processor.parse_xml(xml_text=xml_text)
                svrl = self._executable.transform_to_string(xdm_node=node)
            except PySaxonApiError as exc:
                raise MalformedXml(f"the {self._rules} rules could not run: {exc}") from exc
        if svrl is None:
            raise MalformedXml(f"the {self._rules} rules produced no report")
        return parse_svrl(svrl.encode())


def parse_svrl(svrl: bytes) -> list[Finding]:
    """Failed assertions and successful reports, in document order."""
    root = parse_trusted(svrl)
    findings = []
    for element in root.iter(f"{{{SVRL}}}failed-assert", f"{{{SVRL}}}successful-report"):
        text_element = element.find(f"{{{SVRL}}}text")
        text = "" if text_element is None else " ".join("".join(text_element.itertext()).split())
        flag: Flag = "warning" if element.get("flag") == "warning" else "fatal"
        findings.append(
            Finding(
                rule_id=element.get("id") or "",
                flag=flag,
                location=element.get("location") or "",
                text=text,
            )
        )
    return findings
