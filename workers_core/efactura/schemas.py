"""Where the official schemas live (data files, never in the repository): the directory and
required files of every document kind (e-Factura, e-Transport, REGES, SAF-T), e-Factura's set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workers_core.config import Settings
from workers_core.efactura.errors import SchemasUnavailable

# The checkout's parent: ``<parent>/main/workers_core/efactura/schemas.py``.
_DEFAULT_SCHEMAS_DIR = Path(__file__).resolve().parents[3] / "shared" / "schemas"

CIUS_RO_VERSION = "1.0.9"


def schemas_root(settings: Settings) -> Path:
    """``WORKERS_SCHEMAS_DIR``, else ``../shared/schemas`` beside the checkout; must exist."""
    root = settings.schemas_dir if settings.schemas_dir is not None else _DEFAULT_SCHEMAS_DIR
    if not root.is_dir():
        where = "WORKERS_SCHEMAS_DIR" if settings.schemas_dir is not None else "the default"
        raise SchemasUnavailable(
            f"schemas directory {root} ({where}) does not exist; set WORKERS_SCHEMAS_DIR to the "
            "directory holding anaf/efactura/ubl-2.1 and anaf/efactura/cius-ro-1.0.9",
            path=str(root),
        )
    return root


def required_file(path: Path, must: str) -> Path:
    """``path`` if it is a file; else SchemasUnavailable: ``WORKERS_SCHEMAS_DIR must <must>``."""
    if not path.is_file():
        raise SchemasUnavailable(f"{path} is missing; WORKERS_SCHEMAS_DIR must {must}",
                                 path=str(path))
    return path


@dataclass(frozen=True, slots=True)
class EfacturaSchemas:
    """The three files validation needs, checked to exist when resolved."""

    invoice_xsd: Path
    credit_note_xsd: Path
    schematron_xslt: Path

    @classmethod
    def under(cls, root: Path) -> EfacturaSchemas:
        """The e-Factura files below a schemas root; a missing one is named in the error."""
        base = root / "anaf" / "efactura"
        found = cls(
            invoice_xsd=base / "ubl-2.1" / "maindoc" / "UBL-Invoice-2.1.xsd",
            credit_note_xsd=base / "ubl-2.1" / "maindoc" / "UBL-CreditNote-2.1.xsd",
            # EN 16931 rules + CIUS-RO national rules + code lists, compiled to XSLT 2.0.
            schematron_xslt=base
            / f"cius-ro-{CIUS_RO_VERSION}"
            / "EN16931-CIUS_RO-UBL-validation.xslt",
        )
        for path in (found.invoice_xsd, found.credit_note_xsd, found.schematron_xslt):
            required_file(path, "point at a complete schemas directory "
                                "(see shared/schemas/README.md)")
        return found
