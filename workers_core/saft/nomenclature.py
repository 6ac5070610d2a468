"""ANAF's SAF-T code lists (tax types and codes, the chart of accounts), read from files.

ANAF publishes them in ``RO_SAFT_SchemaDefCod_*.xlsx``, which the schemas directory does
not ship. Exported as two CSV files into ``<schemas>/anaf/saft/nomenclature/`` (or a
directory given explicitly), they turn on two rules; without them the report lists the
check under ``checks_skipped`` instead of passing it silently.

- ``tax_codes.csv``: ``tax_type,tax_code[,description]``, e.g. ``300,310309,TVA 19%``.
- ``accounts.csv``: ``account_id[,description]``: synthetic accounts (``411``, ``4111``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from workers_core.saft.errors import SaftInputError

NOMENCLATURE_SUBDIR = Path("anaf", "saft", "nomenclature")
TAX_CODES_FILE = "tax_codes.csv"
ACCOUNTS_FILE = "accounts.csv"
NO_TAX = ("000", "000000")  # DUKIntegrator's "no tax" entry, valid whatever the list says


@dataclass(frozen=True)
class Nomenclature:
    tax_codes: frozenset[tuple[str, str]] | None
    accounts: frozenset[str] | None
    source: Path

    def tax_problem(self, tax_type: str, tax_code: str) -> str | None:
        if self.tax_codes is None or (tax_type, tax_code) == NO_TAX:
            return None
        if (tax_type, tax_code) in self.tax_codes:
            return None
        return f"TaxType {tax_type!r} with TaxCode {tax_code!r} is not in ANAF's nomenclature"

    def account_problem(self, account_id: str) -> str | None:
        """The synthetic part of an account id (before the first ``.``; without a dot, its
        longest prefix of 3+ characters on the list) must be on the chart."""
        if self.accounts is None:
            return None
        synthetic, dot, _ = account_id.partition(".")
        if dot:
            found = synthetic in self.accounts
        else:
            found = any(account_id[:n] in self.accounts for n in range(len(account_id), 2, -1))
        return None if found else (
            f"account {account_id!r} is not on ANAF's chart of accounts (synthetic "
            f"{synthetic if dot else account_id[:4]!r})")

    def skipped(self) -> list[str]:
        missing = [name for name, table in ((TAX_CODES_FILE, self.tax_codes),
                                            (ACCOUNTS_FILE, self.accounts)) if table is None]
        return [f"ANAF nomenclature: {name} is not in {self.source}" for name in missing]


def _rows(path: Path, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise SaftInputError(f"{path}: needs the column(s) {', '.join(missing)}",
                                 file=str(path))
        return [tuple((row[c] or "").strip() for c in columns) for row in reader
                if any((row[c] or "").strip() for c in columns)]


def load_nomenclature(directory: Path) -> Nomenclature:
    """The lists present in ``directory`` (either may be absent: its rule is skipped)."""
    tax_path, accounts_path = directory / TAX_CODES_FILE, directory / ACCOUNTS_FILE
    tax_codes = (frozenset((t, c) for t, c in _rows(tax_path, ("tax_type", "tax_code")))
                 if tax_path.is_file() else None)
    accounts = (frozenset(a for (a,) in _rows(accounts_path, ("account_id",)))
                if accounts_path.is_file() else None)
    return Nomenclature(tax_codes, accounts, directory)


def nomenclature_for(schemas_root: Path, directory: Path | None = None) -> Nomenclature:
    return load_nomenclature(directory or schemas_root / NOMENCLATURE_SUBDIR)
