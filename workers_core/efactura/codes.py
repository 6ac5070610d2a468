"""Code lists and identifier checks the invoice model enforces before any XML is built."""

from __future__ import annotations

from enum import StrEnum

from workers_core.integrations.anaf.cui import check_digit

CIUS_RO_CUSTOMIZATION_ID = (
    # BR-RO-001: CIUS-RO 1.0.9 rules pin the specification identifier to CIUS-RO 1.0.1.
    "urn:cen.eu:en16931:2017#compliant#urn:efactura.mfinante.ro:CIUS-RO:1.0.1"
)

# BR-RO-110/111: ISO 3166-2:RO, as listed in the CIUS-RO 1.0.9 Schematron.
RO_COUNTIES = frozenset(
    "RO-" + c
    for c in (
        *("AB", "AG", "AR", "B", "BC", "BH", "BN", "BR", "BT", "BV", "BZ", "CJ", "CL", "CS"),
        *("CT", "CV", "DB", "DJ", "GJ", "GL", "GR", "HD", "HR", "IF", "IL", "IS", "MH", "MM"),
        *("MS", "NT", "OT", "PH", "SB", "SJ", "SM", "SV", "TL", "TM", "TR", "VL", "VN", "VS"),
    )
)
BUCHAREST = "RO-B"
# BR-RO-100/101: a Bucharest address names its sector (SECTOR1..SECTOR6) as the city.


class TypeCode(StrEnum):
    """BT-3, UNTDID 1001 as restricted by BR-RO-020 (381 only as a CreditNote)."""

    INVOICE = "380"
    CREDIT_NOTE = "381"
    CORRECTED_INVOICE = "384"
    SELF_BILLED_INVOICE = "389"
    ACCOUNTING_INVOICE = "751"


class VatCategory(StrEnum):
    """BT-151/BT-118, UNCL 5305 as EN 16931 uses it (B, split payment, is Italy only)."""

    STANDARD = "S"
    ZERO = "Z"
    EXEMPT = "E"
    REVERSE_CHARGE = "AE"
    INTRA_COMMUNITY = "K"
    EXPORT = "G"
    NOT_SUBJECT = "O"


# BR-E-10, BR-AE-10, BR-IC-10, BR-G-10, BR-O-10: these need an exemption reason or code.
NEEDS_EXEMPTION_REASON = frozenset(
    {
        VatCategory.EXEMPT,
        VatCategory.REVERSE_CHARGE,
        VatCategory.INTRA_COMMUNITY,
        VatCategory.EXPORT,
        VatCategory.NOT_SUBJECT,
    }
)


def cui_is_valid(digits: str) -> bool:
    """Romanian CUI/CIF check digit (key 753217532; 2-10 digits, no leading zero). Only bare
    digits: an invoice carries the code as written, so nothing is stripped here."""
    if not (digits.isdigit() and 2 <= len(digits) <= 10) or digits[0] == "0":
        return False
    return check_digit(digits[:-1]) == int(digits[-1])


def iban_is_valid(iban: str) -> bool:
    """ISO 13616 mod-97 check, so a typo is caught before the invoice reaches the buyer."""
    if not (15 <= len(iban) <= 34 and iban[:2].isalpha() and iban[2:4].isdigit()):
        return False
    if not iban.isalnum() or not iban.isascii():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1
