"""Write a D406 AuditFile from a data directory, streaming, in constant memory.

Each record becomes a small lxml subtree that ``etree.xmlfile`` writes and forgets, so
memory does not grow with the number of GL lines. The counts and totals that the XSD puts
*before* the entries (``NumberOfEntries``, ``TotalDebit``…) come from a first, cheap pass
over the same file. ``build_tree`` builds the same document as one tree: the naive
baseline the bench compares against, and a test oracle (its bytes must be equal).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from lxml import etree  # type: ignore[import-untyped]
from pydantic import BaseModel

from workers_core.saft.errors import SaftInputError
from workers_core.saft.inputs import input_path, read_header, read_records, read_typed
from workers_core.saft.model import (
    Account,
    Address,
    Asset,
    AssetSupplier,
    AssetTransaction,
    FileHeader,
    Invoice,
    Journal,
    MovementType,
    Owner,
    Partner,
    Payment,
    Product,
    StockEntry,
    StockMovement,
    Tax,
    TaxCode,
    Transaction,
    Uom,
)

FILED_NS = "mfp:anaf:dgti:d406:declaratie:v1"  # what real declarations carry (notes §4.1)
TEST_NS = "mfp:anaf:dgti:d406t:declaratie:v1"  # D406T, the XSD's targetNamespace
AUDIT_FILE_VERSION = "2.4.8"  # the XSD in shared/schemas/anaf/saft


@dataclass
class GenerateSummary:
    """What went into the file: record counts per section and the GL totals."""

    counts: dict[str, int] = field(default_factory=dict)
    gl_lines: int = 0
    total_debit: Decimal = Decimal(0)
    total_credit: Decimal = Decimal(0)


# -- element builders (shared by the streaming writer and the whole-tree baseline) --------
# Elements are built without a namespace: written inside the root, which declares the
# default namespace, they belong to it (and lxml does not repeat xmlns on each one).


def _add(parent: etree._Element, tag: str, text: object | None = None) -> etree._Element:
    child = etree.SubElement(parent, tag)
    if text is not None:
        child.text = _text(text)
    return child


def _opt(parent: etree._Element, tag: str, value: object | None) -> None:
    """``tag`` only when there is a value: the XSD's optional elements."""
    if value is not None:
        _add(parent, tag, value)


def _text(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _money(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01")), "f")


def _amount(parent: etree._Element, tag: str, value: Decimal, currency: str) -> None:
    el = _add(parent, tag)
    _add(el, "Amount", _money(value))
    _add(el, "CurrencyCode", currency)
    _add(el, "CurrencyAmount", _money(value))


def _address(parent: etree._Element, tag: str, a: Address) -> None:
    el = _add(parent, tag)
    for name, value in (
        ("StreetName", a.street),
        ("Number", a.number),
        ("City", a.city),
        ("PostalCode", a.postal_code),
        ("Region", a.region),
        ("Country", a.country),
    ):
        _opt(el, name, value)


def _balances(parent: etree._Element, debit: Decimal, credit: Decimal, when: str) -> None:
    net = debit - credit
    if net >= 0:
        _add(parent, f"{when}DebitBalance", _money(net))
    else:
        _add(parent, f"{when}CreditBalance", _money(-net))


def _tax(parent: etree._Element, tag: str, tax: Tax, currency: str) -> None:
    el = _add(parent, tag)
    _add(el, "TaxType", tax.tax_type)
    _add(el, "TaxCode", tax.tax_code)
    _opt(el, "TaxPercentage", tax.percentage)
    _opt(el, "TaxBase", tax.base)
    _amount(el, "TaxAmount", tax.amount, currency)


def header_element(h: FileHeader) -> etree._Element:
    el = etree.Element("Header")
    for tag, value in (
        ("AuditFileVersion", AUDIT_FILE_VERSION),
        ("AuditFileCountry", "RO"),
        ("AuditFileDateCreated", h.created or dt.date.today()),
        ("SoftwareCompanyName", h.software_company),
        ("SoftwareID", h.software_id),
        ("SoftwareVersion", h.software_version),
    ):
        _add(el, tag, value)
    c = h.company
    company = _add(el, "Company")
    _add(company, "RegistrationNumber", c.registration_number)
    _add(company, "Name", c.name)
    _address(company, "Address", c.address)
    contact = _add(company, "Contact")
    person = _add(contact, "ContactPerson")
    _add(person, "FirstName", c.contact_first_name)
    _add(person, "LastName", c.contact_last_name)
    _add(contact, "Telephone", c.telephone)
    if c.vat_number:
        _add(_add(company, "TaxRegistration"), "TaxRegistrationNumber", c.vat_number)
    _add(_add(company, "BankAccount"), "IBANNumber", c.iban)
    _add(el, "DefaultCurrencyCode", h.currency)
    criteria = _add(el, "SelectionCriteria")
    _add(criteria, "SelectionStartDate", h.period.start)
    _add(criteria, "SelectionEndDate", h.period.end)
    _add(el, "HeaderComment", h.kind.value)
    _add(el, "SegmentIndex", "1")
    _add(el, "TotalSegmentsInsequence", "1")
    _add(el, "TaxAccountingBasis", h.tax_accounting_basis)
    return el


def account_element(a: Account) -> etree._Element:
    el = etree.Element("Account")
    _add(el, "AccountID", a.account_id)
    _add(el, "AccountDescription", a.description)
    _add(el, "AccountType", a.account_type)
    _balances(el, a.opening_debit, a.opening_credit, "Opening")
    _balances(el, a.closing_debit, a.closing_credit, "Closing")
    return el


def partner_element(p: Partner, tag: str) -> etree._Element:
    el = etree.Element(tag)
    company = _add(el, "CompanyStructure")
    _add(company, "RegistrationNumber", p.registration_number or p.partner_id[2:] or "0")
    _add(company, "Name", p.name)
    _address(company, "Address", p.address)
    _add(el, f"{tag}ID", p.partner_id)
    _add(el, "AccountID", p.account_id)
    _balances(el, p.opening_debit, p.opening_credit, "Opening")
    _balances(el, p.closing_debit, p.closing_credit, "Closing")
    return el


def tax_table_entry(codes: list[TaxCode]) -> etree._Element:
    el = etree.Element("TaxTableEntry")
    _add(el, "TaxType", codes[0].tax_type)
    _add(el, "Description", codes[0].description)
    for code in codes:
        details = _add(el, "TaxCodeDetails")
        _add(details, "TaxCode", code.tax_code)
        _add(details, "Description", code.description)
        _add(details, "TaxPercentage", code.percentage)
        _add(details, "BaseRate", code.base_rate)
        _add(details, "Country", code.country)
    return el


def uom_element(u: Uom) -> etree._Element:
    el = etree.Element("UOMTableEntry")
    _add(el, "UnitOfMeasure", u.code)
    _add(el, "Description", u.description)
    return el


def product_element(p: Product) -> etree._Element:
    el = etree.Element("Product")
    for tag, value in (
        ("ProductCode", p.code),
        ("Description", p.description),
        ("ProductCommodityCode", p.commodity_code),
        ("UOMBase", p.uom_base),
        ("UOMStandard", p.uom_standard),
        ("UOMToUOMBaseConversionFactor", p.conversion_factor),
    ):
        _add(el, tag, value)
    return el


def owner_element(o: Owner) -> etree._Element:
    el = etree.Element("Owner")
    company = _add(el, "CompanyStructure")
    _add(company, "RegistrationNumber", o.registration_number or o.owner_id)
    _add(company, "Name", o.name)
    _address(company, "Address", o.address)
    _add(el, "OwnerID", o.owner_id)
    _add(el, "AccountID", o.account_id)
    return el


def movement_type_element(m: MovementType) -> etree._Element:
    el = etree.Element("MovementTypeTableEntry")
    _add(el, "MovementType", m.movement_type)
    _add(el, "Description", m.description)
    return el


def stock_entry_element(e: StockEntry) -> etree._Element:
    el = etree.Element("PhysicalStockEntry")
    _add(el, "WarehouseID", e.warehouse_id)
    _opt(el, "LocationID", e.location_id)
    _add(el, "ProductCode", e.product_code)
    _opt(el, "StockAccountNo", e.stock_account)
    _add(el, "ProductType", e.product_type)
    _opt(el, "ProductStatus", e.product_status)
    for tag, value in (
        ("StockAccountCommodityCode", e.commodity_code),
        ("OwnerID", e.owner_id),
        ("UOMPhysicalStock", e.uom),
        ("UOMToUOMBaseConversionFactor", e.conversion_factor),
        ("UnitPrice", _money(e.unit_price)),
        ("OpeningStockQuantity", e.opening_quantity),
        ("OpeningStockValue", _money(e.opening_value)),
        ("ClosingStockQuantity", e.closing_quantity),
        ("ClosingStockValue", _money(e.closing_value)),
    ):
        _add(el, tag, value)
    characteristics = _add(el, "StockCharacteristics")
    _add(characteristics, "StockCharacteristic", e.characteristic)
    _add(characteristics, "StockCharacteristicValue", e.characteristic_value)
    return el


def stock_movement_element(m: StockMovement, currency: str) -> etree._Element:
    el = etree.Element("StockMovement")
    _add(el, "MovementReference", m.reference)
    _add(el, "MovementDate", m.date)
    _opt(el, "MovementPostingDate", m.posting_date)
    _add(el, "MovementType", m.movement_type)
    if m.document_type is not None and m.document_number is not None:
        document = _add(el, "DocumentReference")
        _add(document, "DocumentType", m.document_type)
        _add(document, "DocumentNumber", m.document_number)
    for line in m.lines:
        ln = _add(el, "StockMovementLine")
        _add(ln, "LineNumber", line.line_number)
        _add(ln, "AccountID", line.account_id)
        _opt(ln, "TransactionID", line.transaction_id)
        _add(ln, "CustomerID", line.customer_id)
        _add(ln, "SupplierID", line.supplier_id)
        _add(ln, "ProductCode", line.product_code)
        _opt(ln, "StockAccountNo", line.stock_account)
        _add(ln, "Quantity", line.quantity)
        _add(ln, "UnitOfMeasure", line.uom)
        _add(ln, "UOMToUOMPhysicalStockConversionFactor", line.conversion_factor)
        if line.book_value is not None:
            _add(ln, "BookValue", _money(line.book_value))
        _add(ln, "MovementSubType", line.movement_sub_type)
        _opt(ln, "MovementComments", line.comments)
        for tax in line.taxes:
            _tax(ln, "TaxInformation", tax, currency)
    return el


def _asset_supplier(parent: etree._Element, s: AssetSupplier) -> None:
    el = _add(parent, "AssetSupplier")
    _add(el, "SupplierName", s.name)
    _add(el, "SupplierID", s.supplier_id)
    _address(el, "PostalAddress", s.address)


def asset_element(a: Asset) -> etree._Element:
    el = etree.Element("Asset")
    _add(el, "AssetID", a.asset_id)
    _add(el, "AccountID", a.account_id)
    _add(el, "Description", a.description)
    for supplier in a.suppliers:
        _asset_supplier(el, supplier)
    _opt(el, "PurchaseOrderDate", a.purchase_order_date)
    _add(el, "DateOfAcquisition", a.acquired)
    _add(el, "StartUpDate", a.started)
    valuations = _add(el, "Valuations")
    for v in a.valuations:
        val = _add(valuations, "Valuation")
        _add(val, "AssetValuationType", v.valuation_type)
        _add(val, "ValuationClass", v.valuation_class)
        _add(val, "AcquisitionAndProductionCostsBegin", _money(v.cost_begin))
        _add(val, "AcquisitionAndProductionCostsEnd", _money(v.cost_end))
        _add(val, "InvestmentSupport", _money(v.investment_support))
        if v.life_years is not None:
            _add(val, "AssetLifeYear", v.life_years)
        else:
            _add(val, "AssetLifeMonth", v.life_months)
        for tag, amount in (("AssetAddition", v.addition), ("Transfers", v.transfers),
                            ("AssetDisposal", v.disposal), ("BookValueBegin", v.book_value_begin)):
            _add(val, tag, _money(amount))
        _add(val, "DepreciationMethod", v.depreciation_method)
        _add(val, "DepreciationPercentage", v.depreciation_percentage)
        _add(val, "DepreciationForPeriod", _money(v.depreciation))
        _add(val, "AppreciationForPeriod", _money(v.appreciation))
        extraordinary = _add(val, "ExtraordinaryDepreciationsForPeriod")
        for x in v.extraordinary:
            entry = _add(extraordinary, "ExtraordinaryDepreciationForPeriod")
            _add(entry, "ExtraordinaryDepreciationMethod", x.method)
            _add(entry, "ExtraordinaryDepreciationAmountForPeriod", _money(x.amount))
        _add(val, "AccumulatedDepreciation", _money(v.accumulated_depreciation))
        _add(val, "BookValueEnd", _money(v.book_value_end))
    return el


def asset_transaction_element(t: AssetTransaction) -> etree._Element:
    el = etree.Element("AssetTransaction")
    _add(el, "AssetTransactionID", t.asset_transaction_id)
    _add(el, "AssetID", t.asset_id)
    _add(el, "AssetTransactionType", t.type)
    _opt(el, "Description", t.description)
    _add(el, "AssetTransactionDate", t.date)
    if t.supplier is not None:
        _asset_supplier(el, t.supplier)
    _add(el, "TransactionID", t.transaction_id)
    valuations = _add(el, "AssetTransactionValuations")
    for v in t.valuations:
        val = _add(valuations, "AssetTransactionValuation")
        _opt(val, "AssetValuationType", v.valuation_type)
        _add(val, "AcquisitionAndProductionCostsOnTransaction", _money(v.cost))
        _add(val, "BookValueOnTransaction", _money(v.book_value))
        _add(val, "AssetTransactionAmount", _money(v.amount))
    return el


def transaction_element(t: Transaction, currency: str) -> etree._Element:
    el = etree.Element("Transaction")
    for tag, value in (
        ("TransactionID", t.transaction_id),
        ("Period", t.date.month),
        ("PeriodYear", t.date.year),
        ("TransactionDate", t.date),
        ("Description", t.description),
        ("SystemEntryDate", t.date),
        ("GLPostingDate", t.posting_date or t.date),
        ("CustomerID", t.customer_id),
        ("SupplierID", t.supplier_id),
    ):
        _add(el, tag, value)
    for line in t.lines:
        ln = _add(el, "TransactionLine")
        for tag, value in (
            ("RecordID", line.record_id),
            ("AccountID", line.account_id),
            ("CustomerID", line.customer_id),
            ("SupplierID", line.supplier_id),
            ("Description", line.description),
        ):
            _add(ln, tag, value)
        if line.credit != 0:
            _amount(ln, "CreditAmount", line.credit, currency)
        else:
            _amount(ln, "DebitAmount", line.debit, currency)
        for tax in line.taxes:
            _tax(ln, "TaxInformation", tax, currency)
    return el


def invoice_element(inv: Invoice, sales: bool, currency: str) -> etree._Element:
    el = etree.Element("Invoice")
    _add(el, "InvoiceNo", inv.invoice_no)
    info = _add(el, "CustomerInfo" if sales else "SupplierInfo")
    _add(info, "CustomerID" if sales else "SupplierID", inv.partner_id)
    _address(info, "BillingAddress", inv.billing_address)
    for tag, value in (
        ("AccountID", inv.account_id),
        ("Period", inv.date.month),
        ("PeriodYear", inv.date.year),
        ("InvoiceDate", inv.date),
        ("InvoiceType", inv.invoice_type),
        ("SelfBillingIndicator", inv.self_billing),
    ):
        _add(el, tag, value)
    for number, line in enumerate(inv.lines, start=1):
        ln = _add(el, "InvoiceLine")
        _add(ln, "LineNumber", number)
        _add(ln, "AccountID", line.account_id)
        if line.product_code:
            _add(ln, "ProductCode", line.product_code)
        _add(ln, "Quantity", line.quantity)
        _add(ln, "UnitPrice", _money(line.unit_price))
        _add(ln, "TaxPointDate", line.tax_point_date or inv.date)
        _add(ln, "Description", line.description)
        _amount(ln, "InvoiceLineAmount", line.amount, currency)
        _add(ln, "DebitCreditIndicator", line.debit_credit)
        _tax(ln, "TaxInformation", line.tax, currency)
    totals = _add(el, "InvoiceDocumentTotals")
    _add(totals, "NetTotal", _money(inv.net_total))
    _add(totals, "GrossTotal", _money(inv.gross_total))
    return el


def payment_element(p: Payment, currency: str) -> etree._Element:
    el = etree.Element("Payment")
    for tag, value in (
        ("PaymentRefNo", p.payment_ref_no),
        ("Period", p.date.month),
        ("PeriodYear", p.date.year),
        ("TransactionDate", p.date),
        ("PaymentMethod", p.payment_method),
        ("Description", p.description),
    ):
        _add(el, tag, value)
    for number, line in enumerate(p.lines, start=1):
        ln = _add(el, "PaymentLine")
        _add(ln, "LineNumber", number)
        if line.source_document_id:
            _add(ln, "SourceDocumentID", line.source_document_id)
        for tag, value in (
            ("AccountID", line.account_id),
            ("CustomerID", line.customer_id),
            ("SupplierID", line.supplier_id),
            ("DebitCreditIndicator", line.debit_credit),
        ):
            _add(ln, tag, value)
        _amount(ln, "PaymentLineAmount", line.amount, currency)
        _tax(ln, "TaxInformation", line.tax, currency)
    _add(_add(el, "PaymentDocumentTotals"), "GrossTotal", _money(p.gross_total))
    return el


# -- where elements go: an incremental file, or one tree --------------------------------


class _Sink(Protocol):
    def section(self, tag: str) -> AbstractContextManager[None]: ...
    def write(self, el: etree._Element) -> None: ...


class _StreamSink:
    def __init__(self, xf: Any) -> None:
        self._xf = xf

    def section(self, tag: str) -> AbstractContextManager[None]:
        return self._xf.element(tag)  # type: ignore[no-any-return]

    def write(self, el: etree._Element) -> None:
        el.tail = "\n"  # a record per line: violations can name a useful line number
        self._xf.write(el)


class _TreeSink:
    def __init__(self, root: etree._Element) -> None:
        self._stack = [root]

    @contextmanager
    def section(self, tag: str) -> Iterator[None]:
        self._stack.append(etree.SubElement(self._stack[-1], tag))
        try:
            yield
        finally:
            self._stack.pop()

    def write(self, el: etree._Element) -> None:
        el.tail = "\n"
        self._stack[-1].append(el)


def _simple(sink: _Sink, tag: str, value: object) -> None:
    el = etree.Element(tag)
    el.text = _text(value)
    sink.write(el)


# -- the document ------------------------------------------------------------------------


@dataclass
class _Totals:
    entries: int = 0
    lines: int = 0
    debit: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)


def _gl_totals(data_dir: Path) -> _Totals:
    """First pass over transactions: totals, and the grouping the second pass relies on."""
    totals, done, current = _Totals(), set[str](), None
    for number, record in read_records(data_dir, "transactions"):
        assert isinstance(record, Transaction)
        if record.journal_id != current:
            if record.journal_id in done:
                raise SaftInputError(
                    f"transactions.jsonl:{number}: journal {record.journal_id} appears again "
                    "after another journal; group transactions by journal_id",
                    file=str(input_path(data_dir, "transactions")),
                    line=number,
                )
            if current is not None:
                done.add(current)
            current = record.journal_id
        totals.entries += 1
        for line in record.lines:
            totals.lines += 1
            totals.debit += line.debit
            totals.credit += line.credit
    return totals


def _doc_totals(records: Iterator[Invoice] | Iterator[Payment]) -> _Totals:
    totals = _Totals()
    for record in records:
        totals.entries += 1
        for line in record.lines:
            if line.debit_credit == "D":
                totals.debit += line.amount
            else:
                totals.credit += line.amount
    return totals


def _write_totals(sink: _Sink, totals: _Totals) -> None:
    _simple(sink, "NumberOfEntries", totals.entries)
    _simple(sink, "TotalDebit", _money(totals.debit))
    _simple(sink, "TotalCredit", _money(totals.credit))


def _write_many(
    sink: _Sink,
    summary: GenerateSummary,
    name: str,
    items: Iterator[BaseModel],
    build: Callable[[Any], etree._Element],
) -> None:
    count = 0
    for item in items:
        sink.write(build(item))
        count += 1
    summary.counts[name] = count


def _write_section(
    sink: _Sink,
    summary: GenerateSummary,
    name: str,
    section: str,
    items: Iterator[BaseModel],
    build: Callable[[Any], etree._Element],
    omit: bool = False,
) -> None:
    """A section of records; empty, it is ``<Section/>`` (or left out with ``omit``), the
    same bytes from the streaming writer and the whole tree."""
    first = next(items, None)
    if first is None:
        summary.counts[name] = 0
        if not omit:
            sink.write(etree.Element(section))
        return
    with sink.section(section):
        _write_many(sink, summary, name, itertools.chain([first], items), build)


def _partner_as(tag: str, p: Partner) -> etree._Element:
    return partner_element(p, tag)


def _invoice_as(sales: bool, currency: str, inv: Invoice) -> etree._Element:
    return invoice_element(inv, sales, currency)


def _master_files(sink: _Sink, data_dir: Path, summary: GenerateSummary) -> None:
    with sink.section("GeneralLedgerAccounts"):
        _write_many(
            sink, summary, "accounts", read_typed(data_dir, "accounts", Account), account_element
        )
    for kind, section, tag in (
        ("customers", "Customers", "Customer"),
        ("suppliers", "Suppliers", "Supplier"),
    ):
        with sink.section(section):
            _write_many(
                sink,
                summary,
                kind,
                read_typed(data_dir, kind, Partner),  # type: ignore[arg-type]
                functools.partial(_partner_as, tag),
            )
    with sink.section("TaxTable"):
        by_type: dict[str, list[TaxCode]] = {}  # a tax table has tens of codes: held whole
        for code in read_typed(data_dir, "tax_table", TaxCode):
            by_type.setdefault(code.tax_type, []).append(code)
        for codes in by_type.values():
            sink.write(tax_table_entry(codes))
        summary.counts["tax_table"] = sum(len(c) for c in by_type.values())
    with sink.section("UOMTable"):
        _write_many(sink, summary, "uom", read_typed(data_dir, "uom", Uom), uom_element)
    sink.write(etree.Element("AnalysisTypeTable"))
    _write_section(sink, summary, "movement_types", "MovementTypeTable",
                   read_typed(data_dir, "movement_types", MovementType), movement_type_element)
    with sink.section("Products"):
        _write_many(
            sink, summary, "products", read_typed(data_dir, "products", Product), product_element
        )
    # PhysicalStock (on ANAF's request) is left out when empty: it needs one entry at least.
    _write_section(sink, summary, "stock", "PhysicalStock",
                   read_typed(data_dir, "stock", StockEntry), stock_entry_element, omit=True)
    _write_section(sink, summary, "owners", "Owners", read_typed(data_dir, "owners", Owner),
                   owner_element)
    _write_section(sink, summary, "assets", "Assets",  # annual filings (A); empty otherwise
                   read_typed(data_dir, "assets", Asset), asset_element)


def _journals(sink: _Sink, data_dir: Path, currency: str, summary: GenerateSummary) -> None:
    totals = _gl_totals(data_dir)
    summary.gl_lines, summary.total_debit, summary.total_credit = (
        totals.lines,
        totals.debit,
        totals.credit,
    )
    summary.counts["transactions"] = totals.entries
    journals = {j.journal_id: j for j in read_typed(data_dir, "journals", Journal)}
    summary.counts["journals"] = len(journals)
    _write_totals(sink, totals)
    transactions = read_typed(data_dir, "transactions", Transaction)
    pending = next(transactions, None)
    for journal in journals.values():
        if pending is None or pending.journal_id != journal.journal_id:
            continue  # the XSD wants at least one Transaction per Journal: skip empty ones
        with sink.section("Journal"):
            _simple(sink, "JournalID", journal.journal_id)
            _simple(sink, "Description", journal.description)
            _simple(sink, "Type", journal.type)
            while pending is not None and pending.journal_id == journal.journal_id:
                sink.write(transaction_element(pending, currency))
                pending = next(transactions, None)
    if pending is not None:
        raise SaftInputError(
            f"transactions.jsonl: transaction {pending.transaction_id} is in journal "
            f"{pending.journal_id}, which is not in journals.jsonl or out of its order"
        )


def _source_documents(sink: _Sink, data_dir: Path, currency: str, summary: GenerateSummary) -> None:
    for kind, section, sales in (
        ("sales_invoices", "SalesInvoices", True),
        ("purchase_invoices", "PurchaseInvoices", False),
    ):
        with sink.section(section):
            _write_totals(sink, _doc_totals(read_typed(data_dir, kind, Invoice)))  # type: ignore[arg-type]
            _write_many(
                sink,
                summary,
                kind,
                read_typed(data_dir, kind, Invoice),  # type: ignore[arg-type]
                functools.partial(_invoice_as, sales, currency),
            )
    with sink.section("Payments"):
        _write_totals(sink, _doc_totals(read_typed(data_dir, "payments", Payment)))
        _write_many(
            sink,
            summary,
            "payments",
            read_typed(data_dir, "payments", Payment),
            lambda p: payment_element(p, currency),
        )
    lines = sum(len(m.lines) for m in read_typed(data_dir, "stock_movements", StockMovement))
    if not lines:  # required; empty without stock movements
        sink.write(etree.Element("MovementOfGoods"))
        summary.counts["stock_movements"] = 0
    else:
        with sink.section("MovementOfGoods"):
            _simple(sink, "NumberOfMovementLines", lines)
            _write_many(sink, summary, "stock_movements",
                        read_typed(data_dir, "stock_movements", StockMovement),
                        lambda m: stock_movement_element(m, currency))
    if input_path(data_dir, "asset_transactions").is_file():
        with sink.section("AssetTransactions"):
            _simple(sink, "NumberOfAssetTransactions", sum(
                1 for _ in read_typed(data_dir, "asset_transactions", AssetTransaction)))
            _write_many(sink, summary, "asset_transactions",
                        read_typed(data_dir, "asset_transactions", AssetTransaction),
                        asset_transaction_element)


def _document(sink: _Sink, data_dir: Path, header: FileHeader) -> GenerateSummary:
    summary = GenerateSummary()
    sink.write(header_element(header))
    with sink.section("MasterFiles"):
        _master_files(sink, data_dir, summary)
    with sink.section("GeneralLedgerEntries"):
        _journals(sink, data_dir, header.currency, summary)
    with sink.section("SourceDocuments"):
        _source_documents(sink, data_dir, header.currency, summary)
    return summary


def namespace_for(header: FileHeader) -> str:
    return TEST_NS if header.test_filing else FILED_NS


def write_stream(
    data_dir: Path, out: BinaryIO, header: FileHeader | None = None
) -> GenerateSummary:
    """Write the D406 XML for ``data_dir`` to ``out`` incrementally; constant memory."""
    header = header or read_header(data_dir)
    ns = namespace_for(header)
    with etree.xmlfile(out, encoding="UTF-8") as xf:
        xf.write_declaration()
        with xf.element(f"{{{ns}}}AuditFile", nsmap={None: ns}):
            return _document(_StreamSink(xf), data_dir, header)


def generate(data_dir: Path, target: Path, header: FileHeader | None = None) -> GenerateSummary:
    """Write the D406 XML for ``data_dir`` to the file ``target``."""
    with target.open("wb") as out:
        return write_stream(data_dir, out, header)


def build_tree(data_dir: Path, header: FileHeader | None = None) -> bytes:
    """The same document built as one lxml tree, then serialised: memory grows with it."""
    header = header or read_header(data_dir)
    ns = namespace_for(header)
    root = etree.Element(f"{{{ns}}}AuditFile", nsmap={None: ns})
    _document(_TreeSink(root), data_dir, header)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")  # type: ignore[no-any-return]
