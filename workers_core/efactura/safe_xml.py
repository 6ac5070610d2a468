"""Parse XML from outside without letting it read files, reach the network or expand entities."""

from __future__ import annotations

from lxml import etree  # type: ignore[import-untyped]

from workers_core.efactura.errors import MalformedXml, UnsafeXml

MAX_XML_BYTES = 10 * 1024 * 1024  # ANAF takes up to 5 MB per upload; twice that is a margin.


def _parser() -> etree.XMLParser:
    # A fresh parser per call: lxml parsers keep state and are not shared across threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
    )


def parse_untrusted(xml: bytes) -> etree._ElementTree:
    """The parsed document; refuses a DOCTYPE (and so any entity) instead of ignoring it."""
    if len(xml) > MAX_XML_BYTES:
        raise UnsafeXml(f"document of {len(xml)} bytes exceeds {MAX_XML_BYTES}")
    try:
        root = etree.fromstring(xml, _parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedXml(f"not well-formed XML: {exc}") from exc
    tree = root.getroottree()
    docinfo = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXml("a DOCTYPE is not allowed in an e-Factura document (entities, XXE)")
    return tree


def parse_trusted(xml: bytes) -> etree._Element:
    """Our own output (SVRL from the compiled rules): the same safe parser, no size cap."""
    return etree.fromstring(xml, _parser())
