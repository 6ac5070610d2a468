"""Validate a D406 file in one streaming pass: the XSD section by section, plus the rules.

lxml's XSD validation needs a whole tree, and a 1M-line D406 is gigabytes as a tree. So the
file is read with ``iterparse``; each ``Transaction`` (after the first of its journal),
``Invoice`` and ``Payment`` is validated on its own against a global element declared from
the XSD's own local declaration, checked by the rules, and dropped. What is left (header,
master files, one transaction per journal) is validated against the full XSD at the end.
Memory grows with the master files and the number of journals, not with GL lines.

Tax and account codes are checked against ANAF's nomenclature when its lists are given
(:mod:`workers_core.saft.nomenclature`); otherwise the report says so in ``checks_skipped``.
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from lxml import etree  # type: ignore[import-untyped]
from pydantic import BaseModel, computed_field

from workers_core.efactura.validate import CompiledXsd
from workers_core.saft.errors import MalformedXml, UnsafeXml
from workers_core.saft.nomenclature import Nomenclature, nomenclature_for
from workers_core.saft.rules import Names, RuleChecker, Violation
from workers_core.saft.schemas import XS, load_xsd_tree, saft_xsd_path
from workers_core.saft.writer import FILED_NS, TEST_NS

GL = "/AuditFile/GeneralLedgerEntries"
# Always indexed in locations, so the first Transaction reads Transaction[1] too.
_REPEATED = frozenset(
    {
        "Journal",
        "Transaction",
        "TransactionLine",
        "Account",
        "Customer",
        "Supplier",
        "Invoice",
        "InvoiceLine",
        "Payment",
        "PaymentLine",
        "Asset",
        "StockMovement",
        "StockMovementLine",
        "AssetTransaction",
        "PhysicalStockEntry",
    }
)
_STREAMED = ("Transaction", "Invoice", "Payment", "StockMovement", "AssetTransaction")
_WATCHED = (
    "Header",
    "Account",
    "Customer",
    "Supplier",
    "GeneralLedgerEntries",
    "Journal",
    *_STREAMED,
)


class SaftReport(BaseModel):
    """Every violation found (up to a cap; ``dropped`` counts the rest) and what was read."""

    file: str
    namespace: str
    test_filing: bool
    declaration_kind: str | None
    transactions: int
    gl_lines: int
    total_debit: Decimal
    total_credit: Decimal
    violations: list[Violation]
    dropped: int
    checks_skipped: list[str]
    elapsed_s: float

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.violations and not self.dropped

    def rules(self) -> list[str]:
        """Distinct rule ids of the violations, in order of first appearance."""
        return list(dict.fromkeys(v.rule for v in self.violations))


class SaftSchema:
    """The D406 XSD plus global ``Transaction``/``Invoice``/``Payment`` declarations, for one
    namespace: compile once per process, then reuse (serialised: lxml keeps an error log)."""

    def __init__(self, xsd: Path, namespace: str) -> None:
        tree = load_xsd_tree(xsd, namespace)
        root = tree.getroot()
        xs = {"xs": XS}
        for xpath in (
            "//xs:element[@name='Journal']//xs:element[@name='Transaction']",
            "//xs:element[@name='Payments']//xs:element[@name='Payment']",
            "//xs:element[@name='MovementOfGoods']//xs:element[@name='StockMovement']",
            "//xs:element[@name='AssetTransactions']//xs:element[@name='AssetTransaction']",
        ):
            declaration = copy.deepcopy(root.xpath(xpath, namespaces=xs)[0])
            for attr in ("minOccurs", "maxOccurs"):  # not allowed on a global element
                declaration.attrib.pop(attr, None)
            root.append(declaration)
        invoice = etree.SubElement(root, f"{{{XS}}}element")
        invoice.set("name", "Invoice")
        invoice.set("type", "nsSAFT:InvoiceStructure")
        self.xsd = CompiledXsd(xsd, tree)

    def issues(self, el: etree._Element, prefix: str) -> list[Violation]:
        """XSD errors of ``el``'s subtree; paths start at ``prefix`` (where ``el`` is)."""
        return [
            Violation(
                rule="XSD",
                location=_resolve(el, entry.path, prefix),
                line=entry.line,
                message=entry.message,
            )
            for entry in self.xsd.errors(el)
        ]


@functools.lru_cache(maxsize=4)
def schema_for(schemas_root: Path, namespace: str) -> SaftSchema:
    """The process's compiled D406 schema for a namespace (about a second, once)."""
    return SaftSchema(saft_xsd_path(schemas_root), namespace)


def _local(tag: str) -> str:
    return str(tag).rpartition("}")[2]


def _named_path(node: etree._Element, top: etree._Element) -> str:
    """``Journal[2]/Transaction`` style path of ``node`` below ``top`` (exclusive)."""
    parts: list[str] = []
    while node is not None and node is not top:
        parent = node.getparent()
        name = _local(node.tag)
        if parent is not None:
            same = [c for c in parent if c.tag == node.tag]
            if len(same) > 1 or name in _REPEATED:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/".join(reversed(parts))


def _resolve(el: etree._Element, libxml_path: str | None, prefix: str) -> str:
    """libxml2 names nodes ``/*/*[3]`` in a default namespace: turn that into tag names."""
    if not libxml_path or not libxml_path.startswith("/*"):
        return prefix
    try:
        found = el.xpath("." + libxml_path[2:]) if libxml_path != "/*" else [el]
    except etree.XPathError:
        return prefix
    if not found or not isinstance(found[0], etree._Element):
        return prefix
    rest = _named_path(found[0], el)
    return f"{prefix}/{rest}" if rest else prefix


@dataclass
class _Position:
    journal: int = 0
    transaction: int = 0
    accounts: int = 0
    customers: int = 0
    suppliers: int = 0
    sales: int = 0
    purchases: int = 0
    payments: int = 0
    movements: int = 0
    asset_transactions: int = 0


def _namespace(path: Path) -> str:
    try:
        for _, el in etree.iterparse(
            str(path), events=("start",), resolve_entities=False, no_network=True, load_dtd=False
        ):
            if el.getroottree().docinfo.doctype:
                raise UnsafeXml("a DOCTYPE is not allowed in a D406 file (entities, XXE)")
            ns, _, local = str(el.tag)[1:].partition("}")
            if local != "AuditFile" or ns not in (FILED_NS, TEST_NS):
                raise MalformedXml(
                    f"root element {el.tag} is not a D406 AuditFile "
                    f"(namespace {FILED_NS} or {TEST_NS})"
                )
            return ns
    except etree.XMLSyntaxError as exc:
        raise MalformedXml(f"not well-formed XML: {exc}") from exc
    raise MalformedXml("empty document")


class _Pass:
    """One streaming pass over a file: dispatches each finished element to the checks."""

    def __init__(self, schema: SaftSchema, q: Names, max_violations: int,
                 nomenclature: Nomenclature) -> None:
        self.schema, self.q = schema, q
        self.rules = RuleChecker(q, max_violations=max_violations, nomenclature=nomenclature)
        self.at = _Position()
        self.xsd: list[Violation] = []

    def start(self, el: etree._Element, local: str) -> None:
        if local == "Journal":
            self.at.journal += 1
            self.at.transaction = 0
            if self.at.journal == 1:
                self.rules.gl_declared(el.getparent())

    def end(self, el: etree._Element, local: str) -> None:
        at, rules = self.at, self.rules
        if local == "Header":
            rules.header(el, "/AuditFile/Header")
        elif local == "Account":
            at.accounts += 1
            rules.account(
                el, f"/AuditFile/MasterFiles/GeneralLedgerAccounts/Account[{at.accounts}]"
            )
        elif local in ("Customer", "Supplier"):
            if local == "Customer":
                n = at.customers = at.customers + 1
            else:
                n = at.suppliers = at.suppliers + 1
            rules.partner(el, f"{local}ID", f"/AuditFile/MasterFiles/{local}s/{local}[{n}]")
        elif local == "Transaction":
            at.transaction += 1
            path = f"{GL}/Journal[{at.journal}]/Transaction[{at.transaction}]"
            rules.transaction(el, path)
            if at.transaction > 1:  # the first stays for the skeleton's XSD check
                self._stream_xsd(el, path)
        elif local == "Invoice":
            self._invoice(el)
        elif local == "Payment":
            at.payments += 1
            self._stream_xsd(el, f"/AuditFile/SourceDocuments/Payments/Payment[{at.payments}]")
        elif local == "StockMovement":
            at.movements += 1
            self._stream_xsd(
                el, f"/AuditFile/SourceDocuments/MovementOfGoods/StockMovement[{at.movements}]")
        elif local == "AssetTransaction":
            at.asset_transactions += 1
            self._stream_xsd(el, "/AuditFile/SourceDocuments/AssetTransactions/"
                                 f"AssetTransaction[{at.asset_transactions}]")
        elif local == "GeneralLedgerEntries" and at.journal == 0:
            rules.gl_declared(el)

    def _invoice(self, el: etree._Element) -> None:
        sales = _local(el.getparent().tag) == "SalesInvoices"
        if sales:
            self.at.sales += 1
        else:
            self.at.purchases += 1
        section = "SalesInvoices" if sales else "PurchaseInvoices"
        n = self.at.sales if sales else self.at.purchases
        path = f"/AuditFile/SourceDocuments/{section}/Invoice[{n}]"
        who = "Customer" if sales else "Supplier"
        info = el.find(self.q(f"{who}Info"))
        if info is not None and info.find(self.q(f"{who}ID")) is not None:
            self.rules.partner(info, f"{who}ID", f"{path}/{who}Info")
        self._stream_xsd(el, path)

    def _stream_xsd(self, el: etree._Element, path: str) -> None:
        self.xsd.extend(self.schema.issues(el, path))
        parent = el.getparent()
        el.clear()
        if parent is not None:
            parent.remove(el)


def validate_file(path: Path, schemas_root: Path, *, max_violations: int = 1000,
                  nomenclature_dir: Path | None = None) -> SaftReport:
    """Stream ``path`` once: XSD section by section, then the business rules. ANAF's code
    lists are read from ``nomenclature_dir`` (default: the schemas' ``anaf/saft/nomenclature``)."""
    started = time.perf_counter()
    ns = _namespace(path)
    q = Names(ns)
    nomenclature = nomenclature_for(schemas_root, nomenclature_dir)
    run = _Pass(schema_for(schemas_root.resolve(), ns), q, max_violations, nomenclature)
    root = None
    try:
        for event, el in etree.iterparse(
            str(path),
            events=("start", "end"),
            tag=[q(t) for t in _WATCHED],
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
        ):
            root = root if root is not None else el.getroottree().getroot()
            (run.start if event == "start" else run.end)(el, _local(el.tag))
    except etree.XMLSyntaxError as exc:
        raise MalformedXml(f"not well-formed XML: {exc}") from exc
    if root is None:  # nothing watched: a bare AuditFile, small enough to hold
        root = etree.parse(
            str(path), etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        ).getroot()
    skeleton = run.schema.issues(root, "/AuditFile")
    violations = [*skeleton, *run.xsd, *run.rules.finish(GL)]
    kept = violations[:max_violations]
    return SaftReport(
        file=str(path),
        namespace=ns,
        test_filing=ns == TEST_NS,
        declaration_kind=run.rules.kind,
        transactions=run.rules.transactions,
        gl_lines=run.rules.lines,
        total_debit=run.rules.debit,
        total_credit=run.rules.credit,
        violations=kept,
        dropped=len(violations) - len(kept) + run.rules.dropped,
        checks_skipped=nomenclature.skipped(),
        elapsed_s=time.perf_counter() - started,
    )
