"""Validate a REGES message with the official ``reges.xsd`` before anything is sent (REGES
refuses a message that breaks the schema with HTTP 400; README §2.2 "verificari sincrone"),
and read what identifies a ready-made message: its type, operation and ``MessageId``."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Final
from uuid import UUID

from lxml import etree  # type: ignore[import-untyped]
from pydantic import BaseModel

from workers_core.efactura.errors import MalformedXml
from workers_core.efactura.safe_xml import parse_untrusted
from workers_core.efactura.schemas import required_file
from workers_core.efactura.validate import CompiledXsd, IssueReport
from workers_core.reges.document import NS, XSI

XSD_PATH: Final = Path("reges") / "reges.xsd"
KINDS: Final = {"Salariat": "employee", "Contract": "contract"}  # what /api/Salariat|Contract take


class MessageIdentity(BaseModel):
    """What names a message: its kind (endpoint), operation and ``MessageId``."""

    kind: str  # employee | contract
    operation: str
    message_id: UUID


class RegesReport(IssueReport):
    message: MessageIdentity | None  # None when the header itself is unreadable


def xsd_path(schemas_root: Path) -> Path:
    return required_file(schemas_root / XSD_PATH,
                         "hold reges/reges.xsd (reges-ro/integrare 'Schema reges.xsd')")


def _xsi_type(root: etree._Element) -> str:
    value = root.get(f"{{{XSI}}}type") or ""
    return value.rpartition(":")[2]


def identify(tree: etree._ElementTree) -> MessageIdentity | None:
    """The message's identity, read leniently (the XSD says what is wrong, if anything)."""
    root = tree.getroot()
    kind = KINDS.get(_xsi_type(root))
    message_id = root.findtext(f"{{{NS}}}Header/{{{NS}}}MessageId")
    operation = root.findtext(f"{{{NS}}}Header/{{{NS}}}Operation")
    if kind is None or not message_id or not operation:
        return None
    try:
        return MessageIdentity(kind=kind, operation=operation.strip(),
                               message_id=UUID(message_id.strip()))
    except ValueError:
        return None


class MessageValidator:
    """The compiled XSD: build once per process, then reuse."""

    def __init__(self, xsd: Path) -> None:
        self._xsd = CompiledXsd(xsd)

    def validate(self, xml: bytes) -> RegesReport:
        """A report for ``xml``; UnsafeXml/MalformedXml for what is not a REGES message."""
        started = time.perf_counter()
        tree = parse_untrusted(xml)
        root = tree.getroot()
        if root.tag != f"{{{NS}}}Message" or _xsi_type(root) not in KINDS:
            raise MalformedXml(
                f"root element {root.tag} (xsi:type {_xsi_type(root) or 'none'}) is not a "
                f'REGES <Message xsi:type="Salariat|Contract"> in {NS}'
            )
        return RegesReport(
            message=identify(tree),
            **IssueReport.split(self._xsd.issues(tree)),
            schematron_ran=False,
            elapsed_s=time.perf_counter() - started,
        )


@functools.lru_cache(maxsize=4)
def validator_for(schemas_root: Path) -> MessageValidator:
    """The process's validator for a schemas directory (compiled on first use)."""
    return MessageValidator(xsd_path(schemas_root))


def validate(xml: bytes, schemas_root: Path) -> RegesReport:
    """Validate one REGES message against ``reges/reges.xsd`` under ``schemas_root``."""
    return validator_for(schemas_root.resolve()).validate(xml)
