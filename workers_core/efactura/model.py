"""The invoice as JSON: what a caller gives us to build a CIUS-RO UBL invoice or credit note.

The model rejects early what the rules would reject late (rule ids in the messages); the
Schematron run in ``validate.py`` stays the authority for everything else.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, ClassVar, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from workers_core.efactura.codes import (
    BUCHAREST,
    NEEDS_EXEMPTION_REASON,
    RO_COUNTIES,
    TypeCode,
    VatCategory,
    cui_is_valid,
    iban_is_valid,
)

CENT = Decimal("0.01")


def to_cents(value: Decimal) -> Decimal:
    """Round half-up to 2 decimals: BR-RO-Z2 allows no more on amounts."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


Money = Annotated[Decimal, AfterValidator(to_cents)]
_SECTOR = re.compile(r"^SECTOR\s*([1-6])$", re.IGNORECASE)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Address(_Model):
    """A postal address; Romanian ones carry an ISO 3166-2:RO county and, in Bucharest, a sector."""

    county_rule: ClassVar[str] = "BR-RO-110"
    sector_rule: ClassVar[str] = "BR-RO-100"

    street: str = Field(min_length=1, max_length=150)  # BR-RO-080/090, BR-RO-L150
    city: str = Field(min_length=1, max_length=50)
    county: str | None = Field(default=None, description="ISO 3166-2 code, e.g. RO-B, RO-CJ.")
    postal_code: str | None = Field(default=None, max_length=20)
    country: str = Field(default="RO", pattern=r"^[A-Z]{2}$")

    @model_validator(mode="after")
    def _romanian_codes(self) -> Self:
        if self.country != "RO":
            return self
        if self.county not in RO_COUNTIES:
            raise ValueError(
                f"[{self.county_rule}] county must be an ISO 3166-2:RO code such as RO-B or "
                f"RO-CJ, got {self.county!r}"
            )
        if self.county == BUCHAREST:
            sector = _SECTOR.match(self.city)
            if sector is None:
                raise ValueError(
                    f"[{self.sector_rule}] a Bucharest (RO-B) address must name its sector as "
                    f"the city: one of SECTOR1..SECTOR6, got {self.city!r}"
                )
            self.city = f"SECTOR{sector.group(1)}"
        return self


class SupplierAddress(Address):
    county_rule = "BR-RO-110"
    sector_rule = "BR-RO-100"


class CustomerAddress(Address):
    county_rule = "BR-RO-111"
    sector_rule = "BR-RO-101"


class Party(_Model):
    """A seller or buyer: ``RO18547290`` is VAT-registered, ``18547290`` is not."""

    name: str = Field(min_length=1, max_length=200)
    tax_id: str = Field(
        min_length=2, max_length=30, description="CUI with RO if VAT-registered; foreign VAT id."
    )

    @field_validator("tax_id")
    @classmethod
    def _known_cui(cls, value: str) -> str:
        value = re.sub(r"\s+", "", value).upper()
        digits = value.removeprefix("RO")
        if (value.startswith("RO") or value.isdigit()) and not cui_is_valid(digits):
            raise ValueError(f"{value!r} is not a valid Romanian CUI (check digit)")
        return value

    @property
    def vat_registered(self) -> bool:
        return not self.tax_id.isdigit()

    @property
    def legal_id(self) -> str:
        """The registration number without the VAT prefix (BT-30/BT-47)."""
        return self.tax_id.removeprefix("RO")


class Supplier(Party):
    address: SupplierAddress
    trade_register: str | None = Field(
        default=None, max_length=100, description="e.g. J40/12345/1998 (BT-33)."
    )


class Customer(Party):
    address: CustomerAddress


def _vat_percent(category: VatCategory, percent: Decimal | None) -> Decimal | None:
    """BR-S-05, BR-Z-05, BR-E-05, BR-AE-05, BR-IC-05, BR-G-05, BR-O-05: rate per category."""
    if category is VatCategory.NOT_SUBJECT:
        if percent is not None:
            raise ValueError("[BR-O-05] category O (not subject to VAT) takes no VAT percent")
        return None
    if category is VatCategory.STANDARD:
        if percent is None or percent <= 0:
            raise ValueError("[BR-S-05] category S needs a VAT percent above 0")
        return percent
    if percent not in (None, Decimal(0)):
        raise ValueError(f"category {category.value} has a VAT percent of 0")
    return Decimal(0)


class _Taxed(_Model):
    vat_category: VatCategory = VatCategory.STANDARD
    vat_percent: Decimal | None = Field(default=None, ge=0, le=100, decimal_places=2)

    @model_validator(mode="after")
    def _rate_fits_category(self) -> Self:
        self.vat_percent = _vat_percent(self.vat_category, self.vat_percent)
        return self


class LineAllowance(_Model):
    amount: Money = Field(gt=0)
    reason: str = Field(min_length=1, max_length=100)  # BR-42: a reason or a reason code


class Line(_Taxed):
    """One invoice line; its net is quantity * unit price - allowances (see ``totals``)."""

    id: str | None = Field(default=None, max_length=200, description="Default: its position.")
    name: str = Field(min_length=1, max_length=100)  # BR-RO-L1024
    description: str | None = Field(default=None, max_length=200)  # BR-RO-L212
    quantity: Decimal
    unit_code: str = Field(default="H87", pattern=r"^[A-Z0-9]{2,3}$", description="UN/ECE rec 20.")
    # BT-146 may carry more than 2 decimals (fuel, utilities); only line nets are rounded.
    unit_price: Decimal = Field(ge=0)  # BR-27
    allowances: list[LineAllowance] = Field(default_factory=list)


class AllowanceCharge(_Taxed):
    """A document-level allowance (BG-20) or charge (BG-21)."""

    charge: bool = False
    amount: Money = Field(gt=0)
    reason: str = Field(min_length=1, max_length=100)  # BR-33/BR-38


class VatExemption(_Model):
    """BT-120/BT-121 for an exempt, reverse-charge, export or out-of-scope breakdown."""

    code: str | None = Field(default=None, pattern=r"^VATEX-[A-Z0-9-]+$")
    reason: str | None = Field(default=None, min_length=1, max_length=100)  # BR-RO-L1019

    @model_validator(mode="after")
    def _code_or_reason(self) -> Self:
        if self.code is None and self.reason is None:
            raise ValueError("give an exemption code (VATEX-...) or a reason")
        return self


class PaymentMeans(_Model):
    code: str = Field(default="30", pattern=r"^([0-9]{1,2}|ZZZ)$", description="UNCL 4461.")
    iban: str | None = None
    account_name: str | None = Field(default=None, max_length=200)  # BR-RO-L208

    @field_validator("iban")
    @classmethod
    def _iban_checksum(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = re.sub(r"\s+", "", value).upper()
        if not iban_is_valid(value):
            raise ValueError(f"{value!r} is not a valid IBAN (mod-97 check)")
        return value

    @model_validator(mode="after")
    def _credit_transfer_has_account(self) -> Self:
        if self.code in ("30", "58") and self.iban is None:
            raise ValueError("[BR-61] a credit transfer (30, 58) needs the payee's IBAN")
        return self


class Invoice(_Model):
    """A CIUS-RO invoice (380, 384, 389, 751) or credit note (381) in its JSON form."""

    type_code: TypeCode = TypeCode.INVOICE
    number: str = Field(min_length=1, max_length=200, pattern=r"\d")  # BR-RO-010, BR-RO-L200
    issue_date: date
    due_date: date | None = None
    currency: str = Field(default="RON", pattern=r"^[A-Z]{3}$")
    vat_total_ron: Money | None = Field(
        default=None, description="BT-111: required when the currency is not RON (BR-RO-030)."
    )
    supplier: Supplier
    customer: Customer
    lines: list[Line] = Field(min_length=1)  # BR-16
    allowances_charges: list[AllowanceCharge] = Field(default_factory=list)
    vat_exemptions: dict[VatCategory, VatExemption] = Field(default_factory=dict)
    payment_means: PaymentMeans | None = None
    payment_terms: str | None = Field(default=None, min_length=1, max_length=300)
    notes: list[Annotated[str, Field(max_length=300)]] = Field(
        default_factory=list,
        max_length=20,  # BR-RO-A020, BR-RO-L302
    )
    preceding_invoice: str | None = Field(default=None, max_length=200, description="BT-25.")
    prepaid_amount: Money = Field(default=Decimal(0), ge=0)

    @property
    def is_credit_note(self) -> bool:
        return self.type_code is TypeCode.CREDIT_NOTE

    @model_validator(mode="after")
    def _tax_currency(self) -> Self:
        # BR-RO-030 + BR-53: a foreign-currency invoice also states its VAT total in RON.
        if self.currency != "RON" and self.vat_total_ron is None:
            raise ValueError("[BR-RO-030] an invoice not in RON needs vat_total_ron")
        if self.currency == "RON" and self.vat_total_ron is not None:
            raise ValueError("vat_total_ron is only for invoices not in RON")
        return self

    @model_validator(mode="after")
    def _credit_note_due_date(self) -> Self:
        # A CreditNote carries BT-9 only inside PaymentMeans (UBL binding of EN 16931).
        if self.is_credit_note and self.due_date is not None and self.payment_means is None:
            raise ValueError("a credit note with a due_date needs payment_means")
        return self

    @model_validator(mode="after")
    def _exemption_reasons(self) -> Self:
        used = {line.vat_category for line in self.lines}
        used |= {ac.vat_category for ac in self.allowances_charges}
        needed = (used & NEEDS_EXEMPTION_REASON) - self.vat_exemptions.keys()
        missing = sorted(c.value for c in needed)
        if missing:
            raise ValueError(
                f"[BR-E-10 and kin] categories {', '.join(missing)} need vat_exemptions entries"
            )
        return self
