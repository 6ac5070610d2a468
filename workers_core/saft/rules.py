"""Business rules checked while a D406 file streams past, one small element at a time.

Memory is bounded by the chart of accounts (one running sum per account), not by the
number of lines. Rule ids:

    SAFT-GL-UNBALANCED          total debit != total credit over all GL lines
    SAFT-GL-TOTALS              NumberOfEntries/TotalDebit/TotalCredit differ from the lines
    SAFT-TRANSACTION-UNBALANCED a transaction's debits != its credits
    SAFT-ACCOUNT-BALANCE        opening + debits - credits != closing, per GL account
    SAFT-ACCOUNT-UNKNOWN        a GL line posts to an account not in GeneralLedgerAccounts
    SAFT-PARTNER-ID             a partner id without a known 2-digit prefix, or 00 + a CUI
                                whose check digit is wrong (DUKIntegrator, notes §4.4)
    SAFT-TAX-INFORMATION        a GL line without TaxInformation (DUKIntegrator, notes §4.4)
    SAFT-HEADER-PERIOD          HeaderComment vs SelectionCriteria, or a transaction dated
                                outside the period or with Period/PeriodYear not its date's
    SAFT-TAX-CODE-NOMENCLATURE  a line's TaxType/TaxCode is not on ANAF's list (when given)
    SAFT-ACCOUNT-NOMENCLATURE   an account's synthetic code is not on ANAF's chart (when given)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from lxml import etree  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict

from workers_core.integrations.anaf.cui import is_valid_cui
from workers_core.saft.model import NO_PARTNER, period_problem
from workers_core.saft.nomenclature import Nomenclature

# Partner id prefixes (Odoo l10n_ro_saft, notes §4.4): 00 CUI, 01 EU VAT, 02 non-EU,
# 03 CNP/NIF, 04-06 customers without a VAT code, 08 anonymous (POS), 09 non-resident NIF.
PARTNER_PREFIXES = frozenset({"00", "01", "02", "03", "04", "05", "06", "08", "09"})
ZERO = Decimal(0)


class Violation(BaseModel):
    """One broken rule and where: ``location`` is an XPath-like path, ``line`` the file's."""

    model_config = ConfigDict(frozen=True)

    rule: str
    location: str
    line: int | None = None
    message: str


class Names:
    """Qualified tag names in the document's namespace (looked up once, used per line)."""

    def __init__(self, ns: str) -> None:
        self.ns = ns

    def __call__(self, local: str) -> str:
        return f"{{{self.ns}}}{local}"


def _decimal(text: str | None) -> Decimal:
    try:
        return Decimal(text) if text else ZERO
    except InvalidOperation:
        return ZERO  # the XSD reports the malformed number


def _date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None  # the XSD reports it


def partner_id_problem(partner_id: str) -> str | None:
    """Why ``partner_id`` is not an ANAF partner id, or None."""
    if partner_id == NO_PARTNER:
        return None
    prefix, rest = partner_id[:2], partner_id[2:]
    if prefix not in PARTNER_PREFIXES:
        return f"{partner_id!r} does not start with a partner type prefix (00-06, 08, 09)"
    if prefix == "00" and not is_valid_cui(rest):
        return f"{partner_id!r}: 00 + {rest!r} is not a valid CUI (check digit)"
    return None


@dataclass
class _Account:
    location: str
    line: int | None
    opening: Decimal  # net debit
    closing: Decimal
    movement: Decimal = ZERO


@dataclass
class RuleChecker:
    """Feed it elements in document order; ``violations`` collects what is wrong."""

    q: Names
    max_violations: int = 1000
    nomenclature: Nomenclature | None = None
    violations: list[Violation] = field(default_factory=list)
    dropped: int = 0
    kind: str | None = None
    period: tuple[dt.date, dt.date] | None = None
    accounts: dict[str, _Account] = field(default_factory=dict)
    declared: dict[str, Decimal] = field(default_factory=dict)
    transactions: int = 0
    lines: int = 0
    debit: Decimal = ZERO
    credit: Decimal = ZERO

    def add(self, rule: str, location: str, line: int | None, message: str) -> None:
        if len(self.violations) < self.max_violations:
            self.violations.append(
                Violation(rule=rule, location=location, line=line, message=message)
            )
        else:
            self.dropped += 1

    def header(self, el: etree._Element, path: str) -> None:
        q = self.q
        self.kind = el.findtext(q("HeaderComment"))
        criteria = el.find(q("SelectionCriteria"))
        start = _date(criteria.findtext(q("SelectionStartDate"))) if criteria is not None else None
        end = _date(criteria.findtext(q("SelectionEndDate"))) if criteria is not None else None
        where = f"{path}/SelectionCriteria"
        if start is None or end is None:
            self.add(
                "SAFT-HEADER-PERIOD",
                where,
                el.sourceline,
                "SelectionStartDate and SelectionEndDate are required for a D406",
            )
            return
        self.period = (start, end)
        problem = period_problem(self.kind or "", start, end)
        if problem:
            self.add("SAFT-HEADER-PERIOD", f"{path}/HeaderComment", el.sourceline, problem)

    def account(self, el: etree._Element, path: str) -> None:
        q = self.q
        opening = _decimal(el.findtext(q("OpeningDebitBalance"))) - _decimal(
            el.findtext(q("OpeningCreditBalance"))
        )
        closing = _decimal(el.findtext(q("ClosingDebitBalance"))) - _decimal(
            el.findtext(q("ClosingCreditBalance"))
        )
        account_id = el.findtext(q("AccountID")) or ""
        self.accounts[account_id] = _Account(path, el.sourceline, opening, closing)
        problem = self.nomenclature and self.nomenclature.account_problem(account_id)
        if problem:
            self.add("SAFT-ACCOUNT-NOMENCLATURE", f"{path}/AccountID", el.sourceline, problem)

    def partner(self, el: etree._Element, id_tag: str, path: str) -> None:
        partner_id = el.findtext(self.q(id_tag)) or ""
        problem = partner_id_problem(partner_id)
        if problem:
            self.add("SAFT-PARTNER-ID", f"{path}/{id_tag}", el.sourceline, problem)

    def gl_declared(self, gl: etree._Element) -> None:
        """The totals GeneralLedgerEntries declares before its journals."""
        for tag in ("NumberOfEntries", "TotalDebit", "TotalCredit"):
            text = gl.findtext(self.q(tag))
            if text is not None:
                self.declared[tag] = _decimal(text)

    def transaction(self, el: etree._Element, path: str) -> None:
        q = self.q
        self.transactions += 1
        self._transaction_dates(el, path)
        debit = credit = ZERO
        for number, line in enumerate(el.iterchildren(q("TransactionLine")), start=1):
            self.lines += 1
            amount = line.find(q("DebitAmount"))
            if amount is not None:
                value = _decimal(amount.findtext(q("Amount")))
                debit += value
            else:
                amount = line.find(q("CreditAmount"))
                value = -_decimal(amount.findtext(q("Amount")) if amount is not None else None)
                credit -= value
            account_id = line.findtext(q("AccountID")) or ""
            account = self.accounts.get(account_id)
            where = f"{path}/TransactionLine[{number}]"
            if account is None:
                self.add(
                    "SAFT-ACCOUNT-UNKNOWN",
                    f"{where}/AccountID",
                    line.sourceline,
                    f"account {account_id!r} is not in GeneralLedgerAccounts",
                )
            else:
                account.movement += value
            if line.find(q("TaxInformation")) is None:
                self.add(
                    "SAFT-TAX-INFORMATION",
                    where,
                    line.sourceline,
                    "every GL line needs TaxInformation (000/000000 when no tax)",
                )
            elif self.nomenclature is not None:
                self._tax_codes(line, where)
        self.debit += debit
        self.credit += credit
        if debit != credit:
            self.add(
                "SAFT-TRANSACTION-UNBALANCED",
                path,
                el.sourceline,
                f"transaction {el.findtext(q('TransactionID'))}: debit {debit} != credit {credit}",
            )

    def _tax_codes(self, line: etree._Element, where: str) -> None:
        assert self.nomenclature is not None
        q = self.q
        for n, tax in enumerate(line.iterchildren(q("TaxInformation")), start=1):
            problem = self.nomenclature.tax_problem(
                tax.findtext(q("TaxType")) or "", tax.findtext(q("TaxCode")) or "")
            if problem:
                self.add("SAFT-TAX-CODE-NOMENCLATURE", f"{where}/TaxInformation[{n}]",
                         tax.sourceline, problem)

    def _transaction_dates(self, el: etree._Element, path: str) -> None:
        q = self.q
        date = _date(el.findtext(q("TransactionDate")))
        if date is None or self.period is None:
            return
        start, end = self.period
        if not start <= date <= end:
            self.add(
                "SAFT-HEADER-PERIOD",
                f"{path}/TransactionDate",
                el.sourceline,
                f"{date} is outside the declared period {start}..{end}",
            )
        if (el.findtext(q("Period")), el.findtext(q("PeriodYear"))) != (
            str(date.month),
            str(date.year),
        ):
            self.add(
                "SAFT-HEADER-PERIOD",
                f"{path}/Period",
                el.sourceline,
                f"Period/PeriodYear do not match TransactionDate {date}",
            )

    def finish(self, gl_path: str) -> list[Violation]:
        """Checks that need every line: the totals and each account's closing balance."""
        if self.debit != self.credit:
            self.add(
                "SAFT-GL-UNBALANCED",
                gl_path,
                None,
                f"total debit {self.debit} != total credit {self.credit}",
            )
        actual = {
            "NumberOfEntries": Decimal(self.transactions),
            "TotalDebit": self.debit,
            "TotalCredit": self.credit,
        }
        for tag, value in self.declared.items():
            if value != actual[tag]:
                self.add(
                    "SAFT-GL-TOTALS",
                    f"{gl_path}/{tag}",
                    None,
                    f"declared {value}, the lines add up to {actual[tag]}",
                )
        for account_id, a in self.accounts.items():
            if a.opening + a.movement != a.closing:
                self.add(
                    "SAFT-ACCOUNT-BALANCE",
                    a.location,
                    a.line,
                    f"account {account_id}: opening {a.opening} + movements {a.movement} "
                    f"= {a.opening + a.movement}, closing says {a.closing} (net debit)",
                )
        return self.violations
