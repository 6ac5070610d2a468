"""UBL 2.1 Invoice / CreditNote XML for a CIUS-RO invoice, elements in the XSD's order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final, TypeAlias

from lxml import etree  # type: ignore[import-untyped]

from workers_core.efactura.codes import CIUS_RO_CUSTOMIZATION_ID
from workers_core.efactura.model import (
    AllowanceCharge,
    Customer,
    Invoice,
    Line,
    Party,
    PaymentMeans,
    Supplier,
)
from workers_core.efactura.totals import Totals, VatBreakdown, compute_totals

INVOICE_NS: Final = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE_NS: Final = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CAC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
# BT-32 (a seller not registered for VAT): any tax scheme other than "VAT" (EN 16931 binding).
NON_VAT_SCHEME: Final = "FC"

_Element: TypeAlias = Any  # lxml ships no type information


def _cbc(parent: _Element, name: str, text: str, **attrs: str) -> _Element:
    element = etree.SubElement(parent, f"{{{CBC}}}{name}", attrs)
    element.text = text
    return element


def _cac(parent: _Element, name: str) -> _Element:
    return etree.SubElement(parent, f"{{{CAC}}}{name}")


def _amount(parent: _Element, name: str, value: Decimal, currency: str) -> None:
    _cbc(parent, name, f"{value:.2f}", currencyID=currency)


def _number(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros (``1E+1`` is not an xs:decimal)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def build_xml(invoice: Invoice) -> bytes:
    """The UBL document (UTF-8, with declaration) for ``invoice``: a pure function of the model."""
    root = build_tree(invoice)
    xml: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return xml


def build_tree(invoice: Invoice) -> _Element:
    """The UBL root element, for callers that go on editing or signing it."""
    credit = invoice.is_credit_note
    doc_ns = CREDIT_NOTE_NS if credit else INVOICE_NS
    root = etree.Element(
        f"{{{doc_ns}}}{'CreditNote' if credit else 'Invoice'}",
        nsmap={None: doc_ns, "cac": CAC, "cbc": CBC},
    )
    totals = compute_totals(invoice)
    _header(root, invoice)
    _supplier(_cac(_cac(root, "AccountingSupplierParty"), "Party"), invoice.supplier)
    _customer(_cac(_cac(root, "AccountingCustomerParty"), "Party"), invoice.customer)
    if invoice.payment_means is not None:
        _payment_means(root, invoice, invoice.payment_means)
    if invoice.payment_terms is not None:
        _cbc(_cac(root, "PaymentTerms"), "Note", invoice.payment_terms)
    for ac in invoice.allowances_charges:
        _allowance_charge(root, ac, invoice.currency)
    _tax_totals(root, invoice, totals)
    _monetary_total(root, totals, invoice.currency)
    for index, (line, net) in enumerate(zip(invoice.lines, totals.line_nets, strict=True), 1):
        _line(root, line, net, str(index), invoice)
    return root


def _header(root: _Element, invoice: Invoice) -> None:
    _cbc(root, "CustomizationID", CIUS_RO_CUSTOMIZATION_ID)
    _cbc(root, "ID", invoice.number)
    _cbc(root, "IssueDate", invoice.issue_date.isoformat())
    if invoice.is_credit_note:
        # A CreditNote has no header DueDate: BT-9 goes to PaymentMeans/PaymentDueDate.
        _cbc(root, "CreditNoteTypeCode", invoice.type_code.value)
    else:
        if invoice.due_date is not None:
            _cbc(root, "DueDate", invoice.due_date.isoformat())
        _cbc(root, "InvoiceTypeCode", invoice.type_code.value)
    for note in invoice.notes:
        _cbc(root, "Note", note)
    _cbc(root, "DocumentCurrencyCode", invoice.currency)
    if invoice.currency != "RON":
        _cbc(root, "TaxCurrencyCode", "RON")  # BR-RO-030
    if invoice.preceding_invoice is not None:
        reference = _cac(_cac(root, "BillingReference"), "InvoiceDocumentReference")
        _cbc(reference, "ID", invoice.preceding_invoice)


def _address(party: _Element, supplier_or_customer: Supplier | Customer) -> None:
    address = supplier_or_customer.address
    postal = _cac(party, "PostalAddress")
    _cbc(postal, "StreetName", address.street)
    _cbc(postal, "CityName", address.city)
    if address.postal_code is not None:
        _cbc(postal, "PostalZone", address.postal_code)
    if address.county is not None:
        _cbc(postal, "CountrySubentity", address.county)
    _cbc(_cac(postal, "Country"), "IdentificationCode", address.country)


def _tax_scheme(party: _Element, who: Party, *, seller: bool) -> None:
    if who.vat_registered:
        scheme = _cac(party, "PartyTaxScheme")
        _cbc(scheme, "CompanyID", who.tax_id)  # BT-31 / BT-48
        _cbc(_cac(scheme, "TaxScheme"), "ID", "VAT")
    elif seller:
        scheme = _cac(party, "PartyTaxScheme")
        _cbc(scheme, "CompanyID", who.legal_id)  # BT-32 (BR-RO-065)
        _cbc(_cac(scheme, "TaxScheme"), "ID", NON_VAT_SCHEME)


def _supplier(party: _Element, supplier: Supplier) -> None:
    _cbc(_cac(party, "PartyName"), "Name", supplier.name)
    _address(party, supplier)
    _tax_scheme(party, supplier, seller=True)
    legal = _cac(party, "PartyLegalEntity")
    _cbc(legal, "RegistrationName", supplier.name)  # BT-27
    _cbc(legal, "CompanyID", supplier.legal_id)  # BT-30
    if supplier.trade_register is not None:
        _cbc(legal, "CompanyLegalForm", supplier.trade_register)  # BT-33


def _customer(party: _Element, customer: Customer) -> None:
    _cbc(_cac(party, "PartyName"), "Name", customer.name)
    _address(party, customer)
    _tax_scheme(party, customer, seller=False)
    legal = _cac(party, "PartyLegalEntity")
    _cbc(legal, "RegistrationName", customer.name)  # BT-44
    _cbc(legal, "CompanyID", customer.legal_id)  # BT-47 (BR-RO-120)


def _payment_means(root: _Element, invoice: Invoice, means: PaymentMeans) -> None:
    element = _cac(root, "PaymentMeans")
    _cbc(element, "PaymentMeansCode", means.code)
    if invoice.is_credit_note and invoice.due_date is not None:
        _cbc(element, "PaymentDueDate", invoice.due_date.isoformat())
    if means.iban is not None:
        account = _cac(element, "PayeeFinancialAccount")
        _cbc(account, "ID", means.iban)
        if means.account_name is not None:
            _cbc(account, "Name", means.account_name)


def _tax_category(parent: _Element, name: str, category: str, percent: Decimal | None) -> _Element:
    element = _cac(parent, name)
    _cbc(element, "ID", category)
    if percent is not None:
        _cbc(element, "Percent", _number(percent))
    return element


def _allowance_charge(root: _Element, ac: AllowanceCharge, currency: str) -> None:
    element = _cac(root, "AllowanceCharge")
    _cbc(element, "ChargeIndicator", "true" if ac.charge else "false")
    _cbc(element, "AllowanceChargeReason", ac.reason)
    _amount(element, "Amount", ac.amount, currency)
    category = _tax_category(element, "TaxCategory", ac.vat_category.value, ac.vat_percent)
    _cbc(_cac(category, "TaxScheme"), "ID", "VAT")


def _tax_totals(root: _Element, invoice: Invoice, totals: Totals) -> None:
    tax_total = _cac(root, "TaxTotal")
    _amount(tax_total, "TaxAmount", totals.vat_total, invoice.currency)  # BT-110
    for group in totals.breakdown:
        _tax_subtotal(tax_total, group, invoice)
    if invoice.vat_total_ron is not None:
        # BT-111: the VAT total in the tax currency, a second TaxTotal without subtotals.
        _amount(_cac(root, "TaxTotal"), "TaxAmount", invoice.vat_total_ron, "RON")


def _tax_subtotal(tax_total: _Element, group: VatBreakdown, invoice: Invoice) -> None:
    subtotal = _cac(tax_total, "TaxSubtotal")
    _amount(subtotal, "TaxableAmount", group.taxable_amount, invoice.currency)
    _amount(subtotal, "TaxAmount", group.vat_amount, invoice.currency)
    category = _tax_category(subtotal, "TaxCategory", group.category.value, group.percent)
    exemption = invoice.vat_exemptions.get(group.category)
    if exemption is not None:
        if exemption.code is not None:
            _cbc(category, "TaxExemptionReasonCode", exemption.code)
        if exemption.reason is not None:
            _cbc(category, "TaxExemptionReason", exemption.reason)
    _cbc(_cac(category, "TaxScheme"), "ID", "VAT")


def _monetary_total(root: _Element, totals: Totals, currency: str) -> None:
    element = _cac(root, "LegalMonetaryTotal")
    _amount(element, "LineExtensionAmount", totals.line_total, currency)
    _amount(element, "TaxExclusiveAmount", totals.tax_exclusive, currency)
    _amount(element, "TaxInclusiveAmount", totals.tax_inclusive, currency)
    if totals.allowance_total:
        _amount(element, "AllowanceTotalAmount", totals.allowance_total, currency)
    if totals.charge_total:
        _amount(element, "ChargeTotalAmount", totals.charge_total, currency)
    if totals.prepaid:
        _amount(element, "PrepaidAmount", totals.prepaid, currency)
    _amount(element, "PayableAmount", totals.payable, currency)


def _line(root: _Element, line: Line, net: Decimal, position: str, invoice: Invoice) -> None:
    credit = invoice.is_credit_note
    element = _cac(root, "CreditNoteLine" if credit else "InvoiceLine")
    _cbc(element, "ID", line.id or position)
    quantity = "CreditedQuantity" if credit else "InvoicedQuantity"
    _cbc(element, quantity, _number(line.quantity), unitCode=line.unit_code)
    _amount(element, "LineExtensionAmount", net, invoice.currency)
    for allowance in line.allowances:
        charge = _cac(element, "AllowanceCharge")
        _cbc(charge, "ChargeIndicator", "false")
        _cbc(charge, "AllowanceChargeReason", allowance.reason)
        _amount(charge, "Amount", allowance.amount, invoice.currency)
    item = _cac(element, "Item")
    if line.description is not None:
        _cbc(item, "Description", line.description)
    _cbc(item, "Name", line.name)
    category = _tax_category(
        item, "ClassifiedTaxCategory", line.vat_category.value, line.vat_percent
    )
    _cbc(_cac(category, "TaxScheme"), "ID", "VAT")
    price = _cac(element, "Price")
    _cbc(price, "PriceAmount", _number(line.unit_price), currencyID=invoice.currency)
