"""Deterministic fake accounting data for one company-month: N balanced GL lines and the rest.

Used by the tests, ``bench/saft.py`` and notebooks. Transactions are written as they are
made (only per-account and per-partner sums are kept), then the master files, whose closing
balances are opening + movements, so the data passes every rule in ``rules.py``.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO

from pydantic import BaseModel

from workers_core.integrations.anaf.cui import with_check_digit
from workers_core.saft.inputs import HEADER_FILE
from workers_core.saft.model import (
    Account,
    Address,
    Asset,
    AssetSupplier,
    AssetTransaction,
    AssetTransactionValuation,
    AssetValuation,
    Company,
    DeclarationKind,
    FileHeader,
    GlLine,
    Invoice,
    InvoiceLine,
    Journal,
    MovementType,
    Owner,
    Partner,
    Payment,
    PaymentLine,
    Period,
    Product,
    StockEntry,
    StockMovement,
    StockMovementLine,
    Tax,
    TaxCode,
    Transaction,
    Uom,
)

VAT_RATE = Decimal("0.19")  # the standard rate in January 2025 (21 % from August 2025)
VAT = Tax(tax_type="300", tax_code="310309", percentage=Decimal(19))
_ACCOUNTS = {
    "1012": ("Capital subscris varsat", "Pasiv"),
    "371": ("Marfuri", "Activ"),
    "401": ("Furnizori", "Pasiv"),
    "411": ("Clienti", "Activ"),
    "4426": ("TVA deductibila", "Activ"),
    "4427": ("TVA colectata", "Pasiv"),
    "5121": ("Conturi la banci in lei", "Activ"),
    "707": ("Venituri din vanzarea marfurilor", "Pasiv"),
}
_OPENING = {"5121": Decimal("100000.00"), "1012": Decimal("-100000.00")}  # debit positive
_JOURNALS = (
    ("VZ", "Jurnal vanzari", "VZ"),
    ("AC", "Jurnal cumparari", "AC"),
    ("BK", "Jurnal banca", "BK"),
)
_DOCUMENTS_PER_KIND = 20
_Posting = tuple[str, Decimal, Decimal, Tax | None]
COMPANY_CUI = with_check_digit(1854729)
ADDRESS = Address(
    city="Bucuresti", region="RO-B", street="Str. Exemplu", number="1", postal_code="010101"
)


def sample_header(kind: DeclarationKind = DeclarationKind.MONTHLY) -> FileHeader:
    """A header for January 2025 (or Q1 2025 for T/NT, the year for A)."""
    months = {"T": 3, "NT": 3, "A": 12}.get(kind.value, 1)
    end = dt.date(2025, months, 1) + dt.timedelta(days=31)
    return FileHeader(
        company=Company(
            registration_number=str(COMPANY_CUI),
            name="Exemplu Comert SRL",
            address=ADDRESS,
            contact_first_name="Ana",
            contact_last_name="Pop",
            telephone="0210000000",
            iban="RO49AAAA1B31007593840000",
            vat_number=f"RO{COMPANY_CUI}",
        ),
        period=Period(start=dt.date(2025, 1, 1), end=end.replace(day=1) - dt.timedelta(days=1)),
        kind=kind,
        created=dt.date(2025, 2, 10),
    )


class _Ledger:
    """Running sums and the random source; one per sample."""

    def __init__(self, seed: int, header: FileHeader) -> None:
        self.rng = random.Random(seed)
        self.header = header
        self.accounts: dict[str, Decimal] = defaultdict(Decimal)  # net debit movement
        self.partners: dict[str, Decimal] = defaultdict(Decimal)
        self.customers = [f"00{with_check_digit(3000000 + i)}" for i in range(20)]
        self.suppliers = [f"00{with_check_digit(4000000 + i)}" for i in range(20)]
        self.count = 0

    def amount(self) -> Decimal:
        return Decimal(self.rng.randint(1_000, 5_000_000)) / 100

    def date(self) -> dt.date:
        p = self.header.period
        return p.start + dt.timedelta(days=self.rng.randint(0, (p.end - p.start).days))

    def line(
        self,
        account: str,
        debit: Decimal,
        credit: Decimal,
        *,
        tax: Tax | None = None,
        customer: str = "0",
        supplier: str = "0",
    ) -> GlLine:
        self.count += 1
        self.accounts[account] += debit - credit
        partner = customer if customer != "0" else supplier
        if partner != "0":
            self.partners[partner] += debit - credit
        return GlLine(
            record_id=str(self.count),
            account_id=account,
            debit=debit,
            credit=credit,
            customer_id=customer,
            supplier_id=supplier,
            description=f"Linia {self.count}",
            taxes=[tax or Tax()],
        )


def _postings(journal: str, size: int, net: Decimal, vat: Decimal) -> list[_Posting]:
    """A sale or purchase with VAT (3 lines), without (2), or a bank payment (2 or 3)."""
    zero, gross = Decimal(0), net + vat
    if journal == "VZ":
        if size == 2:
            return [("411", net, zero, None), ("707", zero, net, None)]
        return [("411", gross, zero, None), ("707", zero, net, None), ("4427", zero, vat, VAT)]
    if journal == "AC":
        if size == 2:
            return [("371", net, zero, None), ("401", zero, net, None)]
        return [("371", net, zero, None), ("4426", vat, zero, VAT), ("401", zero, gross, None)]
    if size == 2:
        return [("401", net, zero, None), ("5121", zero, net, None)]
    return [("401", gross, zero, None), ("5121", zero, net, None), ("5121", zero, vat, None)]


def _transaction(ledger: _Ledger, journal: str, number: int, size: int) -> Transaction:
    net = ledger.amount()
    vat = (net * VAT_RATE).quantize(Decimal("0.01"))
    sales = journal == "VZ"
    partner = ledger.rng.choice(ledger.customers if sales else ledger.suppliers)
    who = {"customer": partner} if sales else {"supplier": partner}
    lines = [
        ledger.line(
            account,
            debit,
            credit,
            tax=tax.model_copy(update={"base": net, "amount": vat}) if tax else None,
            **who,
        )
        for account, debit, credit, tax in _postings(journal, size, net, vat)
    ]
    return Transaction(
        journal_id=journal,
        transaction_id=f"{journal}{number}",
        date=ledger.date(),
        description=f"Document {journal} {number}",
        customer_id=partner if sales else "0",
        supplier_id="0" if sales else partner,
        lines=lines,
    )


def _sizes(total: int, pattern: int) -> Iterator[int]:
    """Transaction sizes (2 or 3, mostly ``pattern``) adding up to exactly ``total`` >= 2."""
    left = total
    while left > 0:
        size = pattern if left >= pattern and left - pattern != 1 else 5 - pattern
        yield size
        left -= size


def _dump(out: IO[bytes], record: BaseModel) -> None:
    out.write(record.model_dump_json(exclude_defaults=True).encode() + b"\n")


def _write_transactions(
    data_dir: Path, ledger: _Ledger, lines: int
) -> dict[str, list[Transaction]]:
    quotas = [lines // 3, lines // 3, lines - 2 * (lines // 3)]
    kept: dict[str, list[Transaction]] = {"VZ": [], "AC": [], "BK": []}
    with (data_dir / "transactions.jsonl").open("wb") as out:
        for (journal, _, _), quota in zip(_JOURNALS, quotas, strict=True):
            pattern = 2 if journal == "BK" else 3
            for number, size in enumerate(_sizes(quota, pattern), start=1):
                tx = _transaction(ledger, journal, number, size)
                if len(kept[journal]) < _DOCUMENTS_PER_KIND and len(tx.lines) == pattern:
                    kept[journal].append(tx)
                _dump(out, tx)
    return kept


def _invoice(tx: Transaction, sales: bool) -> Invoice:
    net_line = tx.lines[1] if sales else tx.lines[0]
    net = net_line.credit if sales else net_line.debit
    vat = tx.lines[2].credit if sales else tx.lines[1].debit
    tax = VAT.model_copy(update={"base": net, "amount": vat})
    line = InvoiceLine(
        account_id=net_line.account_id,
        description="Marfa",
        quantity=Decimal(1),
        unit_price=net,
        amount=net,
        debit_credit="C" if sales else "D",
        tax=tax,
        product_code="P1",
    )
    return Invoice(
        invoice_no=tx.transaction_id,
        partner_id=tx.customer_id if sales else tx.supplier_id,
        billing_address=ADDRESS,
        account_id="411" if sales else "401",
        date=tx.date,
        lines=[line],
        net_total=net,
        gross_total=net + vat,
    )


def _payment(tx: Transaction) -> Payment:
    amount = tx.lines[0].debit
    lines = [
        PaymentLine(account_id="401", debit_credit="D", amount=amount, supplier_id=tx.supplier_id),
        PaymentLine(account_id="5121", debit_credit="C", amount=amount, supplier_id=tx.supplier_id),
    ]
    return Payment(
        payment_ref_no=tx.transaction_id,
        date=tx.date,
        payment_method="03",
        description=tx.description,
        lines=lines,
        gross_total=amount,
    )


def _write(data_dir: Path, name: str, records: Sequence[BaseModel]) -> None:
    with (data_dir / f"{name}.jsonl").open("wb") as out:
        for record in records:
            _dump(out, record)


def _balances(net_opening: Decimal, movement: Decimal) -> dict[str, Decimal]:
    closing = net_opening + movement
    return {
        "opening_debit": max(net_opening, Decimal(0)),
        "opening_credit": max(-net_opening, Decimal(0)),
        "closing_debit": max(closing, Decimal(0)),
        "closing_credit": max(-closing, Decimal(0)),
    }


def write_sample(
    data_dir: Path, lines: int, *, seed: int = 0, kind: DeclarationKind = DeclarationKind.MONTHLY
) -> FileHeader:
    """Fill ``data_dir`` with ``lines`` (at least 6) balanced GL lines and matching master
    files, invoices and payments; returns the header also written to ``header.json``."""
    if lines < 6:
        raise ValueError("a sample needs at least 6 GL lines (two per journal)")
    data_dir.mkdir(parents=True, exist_ok=True)
    header = sample_header(kind)
    (data_dir / HEADER_FILE).write_text(header.model_dump_json(indent=2), encoding="utf-8")
    ledger = _Ledger(seed, header)
    kept = _write_transactions(data_dir, ledger, lines)
    _write(
        data_dir,
        "journals",
        [Journal(journal_id=j, description=d, type=t) for j, d, t in _JOURNALS],
    )
    _write(
        data_dir,
        "accounts",
        [
            Account(
                account_id=a,
                description=d,
                account_type=t,
                **_balances(_OPENING.get(a, Decimal(0)), ledger.accounts[a]),
            )
            for a, (d, t) in _ACCOUNTS.items()
        ],
    )
    for name, ids, account in (
        ("customers", ledger.customers, "411"),
        ("suppliers", ledger.suppliers, "401"),
    ):
        _write(
            data_dir,
            name,
            [
                Partner(
                    partner_id=p,
                    name=f"Partener {p}",
                    account_id=account,
                    address=ADDRESS,
                    **_balances(Decimal(0), ledger.partners[p]),
                )
                for p in ids
            ],
        )
    _write(
        data_dir,
        "tax_table",
        [
            TaxCode(
                tax_type="300", description="TVA 19%", tax_code="310309", percentage=Decimal(19)
            ),
            TaxCode(
                tax_type="000", description="Fara taxa", tax_code="000000", percentage=Decimal(0)
            ),
        ],
    )
    _write(data_dir, "uom", [Uom(code="H87", description="Bucata")])
    _write(
        data_dir,
        "products",
        [
            Product(
                code="P1",
                description="Marfa",
                commodity_code="0",
                uom_base="H87",
                uom_standard="H87",
            )
        ],
    )
    _write(data_dir, "sales_invoices", [_invoice(tx, True) for tx in kept["VZ"]])
    _write(data_dir, "purchase_invoices", [_invoice(tx, False) for tx in kept["AC"]])
    _write(data_dir, "payments", [_payment(tx) for tx in kept["BK"]])
    if kind == DeclarationKind.ANNUAL:  # assets are filed with the annual D406
        _write_assets(data_dir, header, kept["AC"][0].transaction_id if kept["AC"] else "0")
    if kind == DeclarationKind.ON_REQUEST:  # stock is filed on ANAF's request
        _write_stock(data_dir, header)
    return header


def _write_assets(data_dir: Path, header: FileHeader, gl_transaction: str) -> None:
    start = header.period.start
    supplier = AssetSupplier(name="Furnizor utilaje SRL", supplier_id=f"00{COMPANY_CUI}",
                             address=ADDRESS)
    valuation = AssetValuation(
        valuation_type="CONTABIL", valuation_class="2131", cost_begin=Decimal("12000.00"),
        cost_end=Decimal("12000.00"), book_value_begin=Decimal("9000.00"),
        depreciation_method="LINIAR", depreciation_percentage=Decimal(20),
        depreciation=Decimal("2400.00"), accumulated_depreciation=Decimal("5400.00"),
        book_value_end=Decimal("6600.00"), life_years=Decimal(5))
    _write(data_dir, "assets", [
        Asset(asset_id=f"MF{n}", account_id="2131", description=f"Utilaj {n}",
              acquired=start.replace(year=start.year - 2), started=start.replace(
                  year=start.year - 2), valuations=[valuation], suppliers=[supplier])
        for n in range(1, 4)])
    _write(data_dir, "asset_transactions", [AssetTransaction(
        asset_transaction_id="AT1", asset_id="MF1", type="130", date=start,
        transaction_id=gl_transaction, description="Amortizare",
        valuations=[AssetTransactionValuation(cost=Decimal("12000.00"),
                                              book_value=Decimal("6600.00"),
                                              amount=Decimal("2400.00"))])])


def _write_stock(data_dir: Path, header: FileHeader) -> None:
    _write(data_dir, "owners", [Owner(owner_id=f"00{COMPANY_CUI}", name="Firma Demo SRL",
                                      account_id="371", address=ADDRESS,
                                      registration_number=str(COMPANY_CUI))])
    _write(data_dir, "movement_types", [
        MovementType(movement_type="10", description="Intrare din achizitie"),
        MovementType(movement_type="20", description="Iesire prin vanzare")])
    _write(data_dir, "stock", [StockEntry(
        warehouse_id="D1", product_code="P1", product_type="MARFA", commodity_code="0",
        owner_id=f"00{COMPANY_CUI}", uom="H87", unit_price=Decimal("10.00"),
        opening_quantity=Decimal(100), opening_value=Decimal("1000.00"),
        closing_quantity=Decimal(80), closing_value=Decimal("800.00"))])
    _write(data_dir, "stock_movements", [
        StockMovement(reference=f"NIR{n}", date=header.period.start, movement_type=kind,
                      document_type="NIR" if kind == "10" else "AVIZ", document_number=str(n),
                      lines=[StockMovementLine(line_number="1", account_id="371",
                                               product_code="P1", quantity=qty, uom="H87",
                                               movement_sub_type=kind)])
        for n, (kind, qty) in enumerate((("10", Decimal(20)), ("20", Decimal(-40))), start=1)])
