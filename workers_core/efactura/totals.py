"""EN 16931 document totals with Decimal: the amounts BR-CO-10..17 check, computed once."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from workers_core.efactura.codes import VatCategory
from workers_core.efactura.model import Invoice, Line, to_cents

ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class VatBreakdown:
    """BG-23: one (category, rate) group; the VAT is rounded per group (BR-CO-17)."""

    category: VatCategory
    percent: Decimal | None
    taxable_amount: Decimal  # BT-116
    vat_amount: Decimal  # BT-117


@dataclass(frozen=True, slots=True)
class Totals:
    """BG-22 plus the VAT breakdown, every amount already rounded to 2 decimals."""

    line_nets: tuple[Decimal, ...]  # BT-131, per line
    line_total: Decimal  # BT-106
    allowance_total: Decimal  # BT-107
    charge_total: Decimal  # BT-108
    tax_exclusive: Decimal  # BT-109
    vat_total: Decimal  # BT-110
    tax_inclusive: Decimal  # BT-112
    prepaid: Decimal  # BT-113
    payable: Decimal  # BT-115
    breakdown: tuple[VatBreakdown, ...]


def line_net(line: Line) -> Decimal:
    """BT-131 = quantity * net price - line allowances, rounded half-up to 2 decimals."""
    allowances = sum((a.amount for a in line.allowances), ZERO)
    return to_cents(line.quantity * line.unit_price - allowances)


def vat_amount(taxable: Decimal, percent: Decimal | None) -> Decimal:
    """BT-117 = BT-116 * rate / 100, rounded once per breakdown (not per line)."""
    if percent is None:
        return ZERO
    return to_cents(taxable * percent / 100)


def compute_totals(invoice: Invoice) -> Totals:
    """Every document-level amount of ``invoice``, as EN 16931 defines them."""
    nets = tuple(line_net(line) for line in invoice.lines)
    allowances = [ac for ac in invoice.allowances_charges if not ac.charge]
    charges = [ac for ac in invoice.allowances_charges if ac.charge]
    allowance_total = sum((ac.amount for ac in allowances), ZERO)
    charge_total = sum((ac.amount for ac in charges), ZERO)
    line_total = sum(nets, ZERO)
    tax_exclusive = line_total - allowance_total + charge_total

    taxable: dict[tuple[VatCategory, Decimal | None], Decimal] = defaultdict(lambda: ZERO)
    for line, net in zip(invoice.lines, nets, strict=True):
        taxable[line.vat_category, line.vat_percent] += net
    for ac in invoice.allowances_charges:
        taxable[ac.vat_category, ac.vat_percent] += ac.amount if ac.charge else -ac.amount
    breakdown = tuple(
        VatBreakdown(category, percent, amount, vat_amount(amount, percent))
        for (category, percent), amount in taxable.items()
    )
    vat_total = sum((b.vat_amount for b in breakdown), ZERO)
    tax_inclusive = tax_exclusive + vat_total
    return Totals(
        line_nets=nets,
        line_total=line_total,
        allowance_total=allowance_total,
        charge_total=charge_total,
        tax_exclusive=tax_exclusive,
        vat_total=vat_total,
        tax_inclusive=tax_inclusive,
        prepaid=invoice.prepaid_amount,
        payable=tax_inclusive - invoice.prepaid_amount,
        breakdown=breakdown,
    )
