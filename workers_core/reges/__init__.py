"""REGES-ONLINE (Inspecția Muncii): employee and contract messages as JSON, their
``reges2025`` XML, XSD validation, and at-most-once sending with results kept in Redis."""

from workers_core.reges.document import NS, Sender, build_xml
from workers_core.reges.model import ContractMessage, EmployeeMessage, RegesMessage
from workers_core.reges.validate import MessageIdentity, RegesReport, validate

__all__ = [
    "NS",
    "ContractMessage",
    "EmployeeMessage",
    "MessageIdentity",
    "RegesMessage",
    "RegesReport",
    "Sender",
    "build_xml",
    "validate",
]
