"""The e-Transport v2 XML (``mfp:anaf:dgti:eTransport:declaratie:v2``) for a declaration,
elements in the XSD's order; everything is an attribute except the nested elements."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final, TypeAlias

from lxml import etree  # type: ignore[import-untyped]

from workers_core.etransport.model import (
    Address,
    Declaration,
    Goods,
    Notification,
    RoutePoint,
)

NS: Final = "mfp:anaf:dgti:eTransport:declaratie:v2"
_Element: TypeAlias = Any  # lxml ships no type information
_ADDRESS_ATTRS: Final = (
    ("codJudet", "county"),
    ("denumireLocalitate", "city"),
    ("denumireStrada", "street"),
    ("numar", "number"),
    ("bloc", "block"),
    ("scara", "entrance"),
    ("etaj", "floor"),
    ("apartament", "apartment"),
    ("alteInfo", "other"),
    ("codPostal", "postal_code"),
)


def _text(value: object) -> str:
    if isinstance(value, Decimal):  # no exponent, no trailing zeros: an xs:decimal
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "") else text
    if hasattr(value, "value"):  # IntEnum
        return str(value.value)
    return str(value)


def _element(parent: _Element, name: str, **attrs: object) -> _Element:
    """A child with the attributes that are not None, in the order given."""
    element = etree.SubElement(parent, f"{{{NS}}}{name}")
    for key, value in attrs.items():
        if value is not None:
            element.set(key, _text(value))
    return element


def build_xml(declaration: Declaration) -> bytes:
    """The declaration (UTF-8, with XML declaration): a pure function of the model."""
    xml: bytes = etree.tostring(
        build_tree(declaration), xml_declaration=True, encoding="UTF-8", pretty_print=True
    )
    return xml


def build_tree(declaration: Declaration) -> _Element:
    root = etree.Element(f"{{{NS}}}eTransport", nsmap={None: NS})
    root.set("codDeclarant", declaration.declarant_code)
    if declaration.ref is not None:
        root.set("refDeclarant", declaration.ref)
    if declaration.after_outage:
        root.set("declPostAvarie", "D")
    if declaration.notification is not None:
        _notification(root, declaration.notification)
    elif declaration.deletion is not None:
        _element(root, "stergere", uit=declaration.deletion)
    elif declaration.confirmation is not None:
        c = declaration.confirmation
        _element(root, "confirmare", uit=c.uit, tipConfirmare=c.type, observatii=c.notes)
    elif declaration.vehicle_change is not None:
        v = declaration.vehicle_change
        _element(
            root,
            "modifVehicul",
            uit=v.uit,
            nrVehicul=v.vehicle_plate,
            nrRemorca1=v.trailer1_plate,
            nrRemorca2=v.trailer2_plate,
            dataModificare=v.changed_at.replace(tzinfo=None, microsecond=0).isoformat(),
            observatii=v.notes,
        )
    return root


def _notification(root: _Element, n: Notification) -> None:
    element = _element(root, "notificare", codTipOperatiune=n.operation)
    if n.corrects is not None:
        _element(element, "corectie", uit=n.corrects)
    for line in n.goods:
        _goods(element, line)
    _element(
        element,
        "partenerComercial",
        codTara=n.partner.country,
        cod=n.partner.code,
        denumire=n.partner.name,
    )
    t = n.transport
    _element(
        element,
        "dateTransport",
        nrVehicul=t.vehicle_plate,
        nrRemorca1=t.trailer1_plate,
        nrRemorca2=t.trailer2_plate,
        codTaraOrgTransport=t.carrier_country,
        codOrgTransport=t.carrier_code,
        denumireOrgTransport=t.carrier_name,
        dataTransport=t.date.isoformat(),
    )
    _route_point(element, "locStartTraseuRutier", n.start)
    _route_point(element, "locFinalTraseuRutier", n.end)
    for doc in n.documents:
        _element(
            element,
            "documenteTransport",
            tipDocument=doc.type,
            numarDocument=doc.number,
            dataDocument=doc.date.isoformat(),
            observatii=doc.notes,
        )
    for uit in n.previous:
        _element(element, "notificareAnterioara", uit=uit)


def _goods(parent: _Element, line: Goods) -> None:
    _element(
        parent,
        "bunuriTransportate",
        codScopOperatiune=line.purpose,
        codTarifar=line.tariff_code,
        denumireMarfa=line.name,
        cantitate=line.quantity,
        codUnitateMasura=line.unit,
        greutateNeta=line.net_weight_kg,
        greutateBruta=line.gross_weight_kg,
        valoareLeiFaraTva=line.value_ron,
        refDeclarant=line.ref,
    )


def _route_point(parent: _Element, name: str, point: RoutePoint) -> None:
    element = _element(parent, name, codPtf=point.border_point, codBirouVamal=point.customs_office)
    if point.address is not None:
        _address(element, point.address)


def _address(parent: _Element, address: Address) -> None:
    _element(parent, "locatie", **{xml: getattr(address, name) for xml, name in _ADDRESS_ATTRS})
