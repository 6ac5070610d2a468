"""The ``reges2025`` XML of a message (pure: the same message and header values give the
same bytes). Element order follows the XSD's sequences, which the published README
examples do not always (its 4.2 puts ``ReferintaContract`` before ``Actiune``)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Final

from lxml import etree  # type: ignore[import-untyped]

from workers_core.reges.model import (
    ContractContent,
    ContractMessage,
    Employee,
    EmployeeMessage,
    Suspension,
    WorkingTime,
)

NS: Final = "http://www.inspectiamuncii.ro/reges2025"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
_SESSIONS = uuid.UUID("5f0c6a4e-8f38-4a53-9d0e-2b1d1c0b7a11")  # namespace for derived ids


@dataclass(frozen=True)
class Sender:
    """Who sends: ``ClientApplication``, ``Version`` and the default ``AuthorId``."""

    application: str = "workers-core"
    version: str = "1"
    author_id: uuid.UUID | None = None


def _el(parent: Any, name: str, value: object | None = None) -> Any:
    node = etree.SubElement(parent, f"{{{NS}}}{name}")
    if value is not None:
        node.text = _text(value)
    return node


def _opt(parent: Any, name: str, value: object | None) -> None:
    if value is not None:
        _el(parent, name, value)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _ref(parent: Any, name: str, ref: uuid.UUID) -> None:
    _el(_el(parent, name), "Id", ref)


def _header(root: Any, message: EmployeeMessage | ContractMessage, sender: Sender,
            timestamp: dt.datetime) -> None:
    h = message.header
    header = _el(root, "Header")
    _el(header, "MessageId", h.message_id)
    _el(header, "ClientApplication", sender.application)
    _el(header, "Version", sender.version)
    _el(header, "Operation", message.operation)
    _opt(header, "AuthorId", h.author_id or sender.author_id)
    _el(header, "SessionId", h.session_id or uuid.uuid5(_SESSIONS, str(h.message_id)))
    _el(header, "User", h.user)
    _el(header, "Timestamp", timestamp)


def _employee(parent: Any, e: Employee) -> None:
    info = _el(parent, "Info")
    _el(info, "Adresa", e.address)
    _el(info, "Cnp", e.cnp)
    _opt(info, "CnpVechi", e.previous_cnp)
    if e.foreign_worker is not None:
        f = e.foreign_worker
        node = _el(info, "DetaliiSalariatStrain")
        _opt(node, "DataInceputAutorizatie", f.permit_start)
        _opt(node, "DataSfarsitAutorizatie", f.permit_end)
        _el(node, "TipAutorizatie", f.permit_type)
        _opt(node, "NumarAutorizatie", f.permit_number)
    if e.siruta is not None:
        _el(_el(info, "Localitate"), "CodSiruta", e.siruta)
    _opt(info, "LocalitateSalariatStrain", e.foreign_locality)
    _opt(info, "Mentiuni", e.notes)
    if e.nationality is not None:
        _el(_el(info, "Nationalitate"), "Nume", e.nationality)
    _el(info, "Nume", e.last_name)
    _el(info, "Prenume", e.first_name)
    _opt(info, "DataNastere", e.birth_date)
    _el(_el(info, "TaraDomiciliu"), "Nume", e.country_of_residence)
    _el(info, "TipActIdentitate", e.identity_document)


def _working_time(parent: Any, w: WorkingTime) -> None:
    node = _el(parent, "TimpMunca")
    _opt(node, "Durata", w.hours)
    _opt(node, "IntervalTimp", w.interval)
    _el(node, "Norma", w.norm)
    _el(node, "Repartizare", w.split)
    _opt(node, "TipTura", w.shift)
    _opt(node, "RepartizareMunca", w.pattern)
    _opt(node, "InceputInterval", w.starts_at)
    _opt(node, "SfarsitInterval", w.ends_at)


def _content(parent: Any, c: ContractContent) -> None:
    node = _el(parent, "Continut")
    _ref(node, "ReferintaSalariat", c.employee_ref)
    cor = _el(node, "Cor")
    _el(cor, "Cod", c.occupation.code)
    _el(cor, "Versiune", c.occupation.version)
    _el(node, "DataConsemnare", c.recorded_on)
    _el(node, "DataContract", c.signed_on)
    _el(node, "DataInceputContract", c.starts_on)
    _opt(node, "DataSfarsitContract", c.ends_on)
    _opt(node, "Detalii", c.details)
    _el(node, "NumarContract", c.number)
    _el(node, "Radiat", False)
    _el(node, "Salariu", c.salary)
    _el(node, "StareCurenta")  # "sent as an empty element by the client" (XSD)
    _working_time(node, c.working_time)
    _el(node, "TipContract", c.contract_type)
    _el(node, "TipDurata", c.duration)
    _el(node, "TipNorma", c.norm)
    _opt(node, "TipLocMunca", c.workplace_type)
    _opt(node, "JudetLocMunca", c.workplace_county)
    if c.workplace_siruta is not None:
        _el(_el(node, "LocalitateLocMunca"), "CodSiruta", c.workplace_siruta)
    _opt(node, "NivelStudii", c.education)


def _action(parent: Any, message: ContractMessage) -> None:
    a = message.action
    if a is None:
        return
    node = _el(parent, "Actiune")
    if isinstance(a, Suspension):
        node.set(f"{{{XSI}}}type", "ActiuneSuspendare")
        _opt(node, "DataIncetareSuspendare", a.ended_on)  # the base type's element comes first
        _el(node, "DataInceput", a.starts_on)
        _opt(node, "DataSfarsit", a.ends_on)
    else:
        node.set(f"{{{XSI}}}type", "ActiuneIncetare")
        _el(node, "DataIncetare", a.ended_on)
    _opt(node, "Explicatie", a.explanation)
    _el(node, "TemeiLegal", a.legal_basis)


def build_xml(
    message: EmployeeMessage | ContractMessage,
    sender: Sender,
    timestamp: dt.datetime | None = None,
) -> bytes:
    """The message as REGES takes it: ``<Message xsi:type="Salariat|Contract">``."""
    root = etree.Element(f"{{{NS}}}Message", nsmap={None: NS, "xsi": XSI})
    root.set(f"{{{XSI}}}type", "Salariat" if isinstance(message, EmployeeMessage) else "Contract")
    _header(root, message, sender, timestamp or dt.datetime.now(dt.UTC))
    if isinstance(message, EmployeeMessage):
        if message.employee_ref is not None:
            _ref(root, "ReferintaSalariat", message.employee_ref)
        _employee(root, message.employee)
    else:
        _action(root, message)
        if message.contract_ref is not None:
            _ref(root, "ReferintaContract", message.contract_ref)
        if message.content is not None:
            _content(root, message.content)
        if (d := message.supporting_document) is not None:
            node = _el(root, "DocumentJustificativ")
            _el(node, "TipDocumentJustificativ", d.type)
            _el(node, "NumarDocumentJustificativ", d.number)
            _el(node, "DataDocumentJustificativ", d.date)
        _opt(root, "MotivRadiere", message.deletion_reason)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
