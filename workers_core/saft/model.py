"""Input records for a D406 file: one pydantic model per JSON Lines kind, plus the header.

A data directory holds ``header.json`` (:class:`FileHeader`) and one ``<kind>.jsonl`` per
:data:`INPUT_FILES` entry. ``transactions.jsonl`` carries each transaction with its lines and
must be grouped by ``journal_id`` in the order of ``journals.jsonl`` (so the writer streams
it once and never holds a journal in memory). Amounts are in the company's currency (RON).
"""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Money = Annotated[Decimal, Field(max_digits=18, decimal_places=2)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=9)]  # SAFcodeType
Short = Annotated[str, StringConstraints(min_length=1, max_length=18)]  # SAFshorttextType
Middle1 = Annotated[str, StringConstraints(min_length=1, max_length=35)]
Middle2 = Annotated[str, StringConstraints(min_length=1, max_length=70)]
Long = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]

# "No partner" on a GL line: DUKIntegrator wants CustomerID and SupplierID on every line.
NO_PARTNER = "0"


class DeclarationKind(StrEnum):
    """``HeaderComment`` of a D406 (notes/anaf.md §4.2): the filing's period type."""

    MONTHLY = "L"
    QUARTERLY = "T"
    ANNUAL = "A"
    ON_REQUEST = "C"
    NON_RESIDENT_MONTHLY = "NL"
    NON_RESIDENT_QUARTERLY = "NT"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Address(_Record):
    city: Middle1
    country: Country = "RO"
    street: Middle2 | None = None
    number: Short | None = None
    postal_code: Short | None = None
    region: Middle1 | None = None


class Company(_Record):
    """The declaring company (Header/Company): every field the header structure requires."""

    registration_number: Middle1 = Field(description="CUI without RO, e.g. 18547290.")
    name: Long
    address: Address
    contact_first_name: Middle1
    contact_last_name: Middle2
    telephone: Short
    iban: Middle1
    vat_number: Middle1 | None = Field(default=None, description="RO + CUI when VAT-registered.")


class Period(_Record):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end < self.start:
            raise ValueError("period end is before its start")
        return self


class FileHeader(_Record):
    """``header.json``: who files, for which period, which declaration type."""

    company: Company
    period: Period
    kind: DeclarationKind
    tax_accounting_basis: Literal[
        "A", "I", "IFRS", "BANK", "INSURANCE", "NORMA39", "IFN", "NORMA36", "NORMA14", "ONG"
    ] = "A"
    currency: Currency = "RON"
    created: dt.date | None = Field(default=None, description="Default: today.")
    software_company: Middle2 = "workers-core"
    software_id: Long = "workers-core saft"
    software_version: Short = "0.1.0"
    test_filing: bool = Field(
        default=False, description="D406T namespace (no-effect test filing) instead of D406."
    )

    @model_validator(mode="after")
    def _period_fits_kind(self) -> FileHeader:
        problem = period_problem(self.kind, self.period.start, self.period.end)
        if problem:
            raise ValueError(problem)
        return self


def period_problem(kind: str, start: dt.date, end: dt.date) -> str | None:
    """Why ``start``..``end`` cannot be the period of a ``kind`` declaration, or None."""
    if kind == DeclarationKind.ON_REQUEST:
        return None if start <= end else "period end is before its start"
    months = {"L": 1, "NL": 1, "T": 3, "NT": 3, "A": 12}.get(kind)
    if months is None:
        return f"unknown declaration type {kind!r} (L, T, A, C, NL, NT)"
    if (
        start.day != 1
        or (months == 3 and start.month % 3 != 1)
        or (months == 12 and start.month != 1)
    ):
        return f"a {kind} declaration starts on the first day of a {_unit(months)}, not {start}"
    last_month = start.month + months - 1
    last_day = dt.date(start.year, last_month, calendar.monthrange(start.year, last_month)[1])
    if end != last_day:
        return f"a {kind} declaration starting {start} ends on {last_day}, not {end}"
    return None


def _unit(months: int) -> str:
    return {1: "month", 3: "quarter", 12: "year"}[months]


class Account(_Record):
    """A GL account with its balances; each balance is stored as debit and credit parts."""

    account_id: Middle2
    description: Long
    account_type: Literal["Activ", "Pasiv", "Bifunctional"]
    opening_debit: Money = Decimal(0)
    opening_credit: Money = Decimal(0)
    closing_debit: Money = Decimal(0)
    closing_credit: Money = Decimal(0)


class Partner(_Record):
    """A customer or supplier; ``partner_id`` carries ANAF's 2-digit type prefix (00 + CUI)."""

    partner_id: Middle1
    name: Long
    account_id: Middle2
    address: Address
    registration_number: Middle1 | None = None
    opening_debit: Money = Decimal(0)
    opening_credit: Money = Decimal(0)
    closing_debit: Money = Decimal(0)
    closing_credit: Money = Decimal(0)


class TaxCode(_Record):
    tax_type: Code
    description: Long
    tax_code: Code
    percentage: Decimal
    base_rate: Decimal = Decimal("1.00")  # a fraction, not a percentage (DUKIntegrator)
    country: Country = "RO"


class Uom(_Record):
    code: Code
    description: Long


class Product(_Record):
    code: Middle2
    description: Long
    commodity_code: Middle1
    uom_base: Code
    uom_standard: Code
    conversion_factor: Decimal = Decimal(1)


class Journal(_Record):
    journal_id: Short
    description: Long
    type: Code


class Tax(_Record):
    """``TaxInformation``: the default is the no-tax entry DUKIntegrator wants on every line."""

    tax_type: Code = "000"
    tax_code: Code = "000000"
    percentage: Decimal | None = None
    base: Decimal | None = None
    amount: Money = Decimal(0)


class GlLine(_Record):
    record_id: Short
    account_id: Middle2
    debit: Money = Decimal(0)
    credit: Money = Decimal(0)
    customer_id: Middle1 = NO_PARTNER
    supplier_id: Middle1 = NO_PARTNER
    description: Long
    taxes: list[Tax] = Field(default_factory=lambda: [Tax()])

    @model_validator(mode="after")
    def _one_side(self) -> GlLine:
        if self.debit != 0 and self.credit != 0:
            raise ValueError("a line is either a debit or a credit, not both")
        return self


class Transaction(_Record):
    journal_id: Short
    transaction_id: Middle2
    date: dt.date
    description: Long
    posting_date: dt.date | None = None
    customer_id: Middle1 = NO_PARTNER
    supplier_id: Middle1 = NO_PARTNER
    lines: list[GlLine] = Field(min_length=1)


class InvoiceLine(_Record):
    account_id: Middle2
    description: Long
    quantity: Decimal
    unit_price: Money
    amount: Money
    debit_credit: Literal["D", "C"]
    tax: Tax
    product_code: Middle2 | None = None
    tax_point_date: dt.date | None = None


class Invoice(_Record):
    """A sales invoice (partner = customer) or a purchase invoice (partner = supplier)."""

    invoice_no: Middle2
    partner_id: Middle1
    billing_address: Address
    account_id: Middle2
    date: dt.date
    invoice_type: Code = "380"
    self_billing: Code = "N"
    lines: list[InvoiceLine] = Field(min_length=1)
    net_total: Money
    gross_total: Money


class PaymentLine(_Record):
    account_id: Middle2
    debit_credit: Literal["D", "C"]
    amount: Money
    customer_id: Middle1 = NO_PARTNER
    supplier_id: Middle1 = NO_PARTNER
    source_document_id: Middle1 | None = None
    tax: Tax = Field(default_factory=Tax)


class Payment(_Record):
    payment_ref_no: Middle1
    date: dt.date
    payment_method: Short
    description: Long
    lines: list[PaymentLine] = Field(min_length=1)
    gross_total: Money


class Owner(_Record):
    """``Owners/Owner``: who owns stock held here (``PhysicalStock`` names it by id)."""

    owner_id: Middle1
    name: Long
    account_id: Middle2
    address: Address
    registration_number: Middle1 | None = None


class MovementType(_Record):
    """``MovementTypeTable``: the codes ``StockMovement/MovementType`` may use."""

    movement_type: Code
    description: Long


class StockEntry(_Record):
    """``PhysicalStockEntry``: a product's stock in a warehouse (filed on ANAF's request)."""

    warehouse_id: Middle1
    product_code: Middle2
    product_type: Short
    commodity_code: Middle1
    owner_id: Middle1
    uom: Code
    unit_price: Money
    opening_quantity: Decimal
    opening_value: Money
    closing_quantity: Decimal
    closing_value: Money
    location_id: Short | None = None
    stock_account: Middle2 | None = None
    product_status: Short | None = None
    conversion_factor: Decimal = Decimal(1)
    characteristic: Short = Field(default="NA", description="StockCharacteristic (required).")
    characteristic_value: Middle1 = "NA"


class StockMovementLine(_Record):
    line_number: Short
    account_id: Middle2
    product_code: Middle2
    quantity: Decimal
    uom: Code
    movement_sub_type: Code
    customer_id: Middle1 = NO_PARTNER
    supplier_id: Middle1 = NO_PARTNER
    transaction_id: Middle2 | None = None
    stock_account: Middle2 | None = None
    conversion_factor: Decimal = Decimal(1)
    book_value: Money | None = None
    comments: Long | None = None
    taxes: list[Tax] = Field(default_factory=list)


class StockMovement(_Record):
    """``MovementOfGoods/StockMovement``: a receipt, issue or transfer with its lines."""

    reference: Middle1
    date: dt.date
    movement_type: Code
    lines: list[StockMovementLine] = Field(min_length=1)
    posting_date: dt.date | None = None
    document_type: Short | None = None
    document_number: Middle1 | None = None


class AssetSupplier(_Record):
    name: Middle2
    supplier_id: Middle1
    address: Address


class ExtraordinaryDepreciation(_Record):
    method: Middle1
    amount: Money


class AssetValuation(_Record):
    """``Asset/Valuations/Valuation``: one valuation (accounting, tax, ...) of the period."""

    valuation_type: Short
    valuation_class: Short
    cost_begin: Money = Field(description="AcquisitionAndProductionCostsBegin")
    cost_end: Money = Field(description="AcquisitionAndProductionCostsEnd")
    book_value_begin: Money
    depreciation_method: Middle1
    depreciation_percentage: Decimal
    depreciation: Money = Field(description="DepreciationForPeriod")
    accumulated_depreciation: Money
    book_value_end: Money
    life_years: Decimal | None = None
    life_months: Decimal | None = None
    investment_support: Money = Decimal(0)
    addition: Money = Decimal(0)
    transfers: Money = Decimal(0)
    disposal: Money = Decimal(0)
    appreciation: Money = Decimal(0)
    extraordinary: list[ExtraordinaryDepreciation] = Field(
        default_factory=lambda: [ExtraordinaryDepreciation(method="NA", amount=Decimal(0))],
        min_length=1)

    @model_validator(mode="after")
    def _one_life(self) -> AssetValuation:
        if (self.life_years is None) == (self.life_months is None):
            raise ValueError("give exactly one of life_years, life_months")
        return self


class Asset(_Record):
    """``Assets/Asset``: a fixed asset with its valuations (filed annually, D406 A)."""

    asset_id: Middle1
    account_id: Middle2
    description: Long
    acquired: dt.date = Field(description="DateOfAcquisition")
    started: dt.date = Field(description="StartUpDate")
    valuations: list[AssetValuation] = Field(min_length=1)
    suppliers: list[AssetSupplier] = Field(default_factory=list)
    purchase_order_date: dt.date | None = None


class AssetTransactionValuation(_Record):
    cost: Money = Field(description="AcquisitionAndProductionCostsOnTransaction")
    book_value: Money = Field(description="BookValueOnTransaction")
    amount: Money = Field(description="AssetTransactionAmount")
    valuation_type: Short | None = None


class AssetTransaction(_Record):
    """``AssetTransactions/AssetTransaction``: an acquisition, disposal, revaluation..."""

    asset_transaction_id: Middle2
    asset_id: Middle1
    type: Code
    date: dt.date
    transaction_id: Middle2 = Field(description="The GL transaction that records it.")
    valuations: list[AssetTransactionValuation] = Field(min_length=1)
    description: Long | None = None
    supplier: AssetSupplier | None = None


InputKind = Literal[
    "accounts",
    "customers",
    "suppliers",
    "tax_table",
    "uom",
    "products",
    "journals",
    "transactions",
    "sales_invoices",
    "purchase_invoices",
    "payments",
    "owners",
    "movement_types",
    "stock",
    "stock_movements",
    "assets",
    "asset_transactions",
]
INPUT_FILES: dict[InputKind, type[_Record]] = {
    "accounts": Account,
    "customers": Partner,
    "suppliers": Partner,
    "tax_table": TaxCode,
    "uom": Uom,
    "products": Product,
    "journals": Journal,
    "transactions": Transaction,
    "sales_invoices": Invoice,
    "purchase_invoices": Invoice,
    "payments": Payment,
    "owners": Owner,
    "movement_types": MovementType,
    "stock": StockEntry,
    "stock_movements": StockMovement,
    "assets": Asset,
    "asset_transactions": AssetTransaction,
}
