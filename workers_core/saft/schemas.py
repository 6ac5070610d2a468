"""The D406 XSD from the schemas directory, compiled for either namespace it is filed in.

The XSD declares ``targetNamespace="mfp:anaf:dgti:d406t:declaratie:v1"`` (D406T, the test
filing) while real declarations use ``mfp:anaf:dgti:d406:declaratie:v1``; the two differ only
by namespace (shared/schemas/README.md, notes/anaf.md §4.1). So the XSD is compiled twice:
as shipped for D406T, and with its target namespace rewritten to the D406 one.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree  # type: ignore[import-untyped]

from workers_core.efactura.schemas import required_file
from workers_core.saft.errors import SchemasUnavailable
from workers_core.saft.writer import FILED_NS, TEST_NS

SAFT_XSD = Path("anaf") / "saft" / "Ro_SAFT_Schema_v248_20231121.xsd"
XS = "http://www.w3.org/2001/XMLSchema"


def saft_xsd_path(root: Path) -> Path:
    """The D406 XSD below a schemas root; a missing file is a clear error."""
    return required_file(root / SAFT_XSD, "point at a schemas directory holding anaf/saft "
                                          "(see shared/schemas/README.md)")


def load_xsd_tree(path: Path, namespace: str) -> etree._ElementTree:
    """The XSD as a tree whose target namespace is ``namespace`` (D406 or D406T)."""
    if namespace not in (FILED_NS, TEST_NS):
        raise ValueError(f"not a D406 namespace: {namespace}")
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    try:
        text = path.read_bytes()
        if namespace == FILED_NS:
            # The D406T name occurs only as targetNamespace and the nsSAFT prefix binding.
            text = text.replace(TEST_NS.encode(), FILED_NS.encode())
        return etree.ElementTree(etree.fromstring(text, parser))
    except (etree.XMLSyntaxError, OSError) as exc:
        raise SchemasUnavailable(f"cannot read {path}: {exc}", path=str(path)) from exc
