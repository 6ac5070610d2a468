"""e-Transport v2 code lists and the UIT check (XSD v2 ``schema_ETR_v2``, Schematron 2.0.2).

Sources: notes/anaf.md §3.2-3.3; the rule ids are the Schematron's (BR-019, BR-068 ...).
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Final


class OperationType(IntEnum):
    """``codTipOperatiune`` (BR-CL-004)."""

    AIC = 10  # achiziție intracomunitară
    LHI = 12  # lohn (UE) - intrare
    SCI = 14  # call-off stock - intrare
    LIC = 20  # livrare intracomunitară
    LHE = 22  # lohn (UE) - ieșire
    SCE = 24  # call-off stock - ieșire
    TTN = 30  # transport pe teritoriul național
    IMP = 40
    EXP = 50
    DIN = 60  # intracomunitar - intrare pentru depozitare/formare nou transport
    DIE = 70  # intracomunitar - ieșire după depozitare/formare nou transport


class DocumentType(IntEnum):
    """``tipDocument`` of ``documenteTransport``."""

    CMR = 10
    INVOICE = 20  # Factura
    DELIVERY_NOTE = 30  # Aviz de însoțire
    OTHER = 9999  # Altele: ``observatii`` required (BR-026)


class ConfirmationType(IntEnum):
    """``tipConfirmare``."""

    CONFIRMED = 10
    PARTIAL = 20
    REFUSED = 30


SAME_AS_OPERATION: Final = 9999
# codScopOperatiune allowed per operation (BR-068, BR-069, BR-070, BR-205).
PURPOSES: Final[dict[OperationType, frozenset[int]]] = {
    OperationType.AIC: frozenset(
        {101, 201, 301, 401, 501, 601, 703, 801, 802, 901, 1001, 1101, 9901}
    ),
    OperationType.LIC: frozenset({101, 301, 703, 801, 802, 9901}),
    OperationType.TTN: frozenset({101, 704, 705, 9901}),
    **{
        op: frozenset({SAME_AS_OPERATION})
        for op in (
            OperationType.LHI,
            OperationType.SCI,
            OperationType.LHE,
            OperationType.SCE,
            OperationType.IMP,
            OperationType.EXP,
            OperationType.DIN,
            OperationType.DIE,
        )
    },
}
PURPOSE_RULE: Final[dict[OperationType, str]] = {
    OperationType.AIC: "BR-068",
    OperationType.LIC: "BR-069",
    OperationType.TTN: "BR-070",
}
# Intra-EU operations: the partner is in the EU and not in Romania (BR-004).
INTRA_EU: Final = frozenset(
    {
        OperationType.AIC,
        OperationType.LHI,
        OperationType.SCI,
        OperationType.LIC,
        OperationType.LHE,
        OperationType.SCE,
        OperationType.DIN,
        OperationType.DIE,
    }
)
# Goods lines need codTarifar, greutateNeta, valoareLeiFaraTva unless the operation is
# 60/70 (BR-206, BR-207, BR-208).
STORAGE_LEGS: Final = frozenset({OperationType.DIN, OperationType.DIE})
# No border point (PTF) at the start for these operations (BR-212), at the end for these (BR-213).
NO_PTF_AT_START: Final = frozenset({20, 22, 24, 30, 50, 70})
NO_PTF_AT_END: Final = frozenset({12, 14, 30, 40, 60})
# The Schematron's $ISO-3166-EU-CODES (Greece is EL; XI is Northern Ireland).
EU_COUNTRIES: Final = frozenset(
    {
        "AT",
        "BE",
        "BG",
        "CZ",
        "CY",
        "DE",
        "DK",
        "EE",
        "EL",
        "ES",
        "FI",
        "HR",
        "HU",
        "IE",
        "IT",
        "FR",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SI",
        "SE",
        "SK",
        "XI",
    }
)
# codJudet (BR-CL-002): 1-40, 51 Călărași, 52 Giurgiu; 40 is București.
COUNTIES: Final = frozenset([*range(1, 41), 51, 52])
# codPtf: the border crossing points 1-38 of the XSD's list.
BORDER_POINTS: Final = frozenset(range(1, 39))

# The declarant's and partners' fiscal codes (BR-002, BR-007, BR-043, BR-209): a CNP (13
# digits) or a CUI (2-10 digits), no leading zero.
TIN: Final = re.compile(r"^(?:[1-9][0-9]{12}|[1-9][0-9]{1,9})$")
PLATE: Final = re.compile(r"^[0-9A-Z]{2,20}$")  # BR-031..033

UIT_ALPHABET: Final = "0123456789ACDEFHJKLMNPQRTUVWXY"  # no O I Z S G B (look like digits)
UIT_PATTERN: Final = re.compile(r"^[0-9ACDEFHJKLMNPQRTUVWXY]{14}[0-9]{2}$")


def uit_check_digits(body: str) -> str:
    """The last two digits of the sum of the code points of the first 14 characters.

    The algorithm of Schematron rule BR-019 (and the XSD's comment on ``UitType``):
    ``3V0P0L0P0T3JUW`` sums to 946, so its UIT is ``3V0P0L0P0T3JUW46``.
    """
    if len(body) != 14:
        raise ValueError(f"a UIT's body is 14 characters, got {len(body)}")
    return f"{sum(ord(ch) for ch in body) % 100:02d}"


def uit_is_valid(uit: str) -> bool:
    """16 characters of ANAF's alphabet (BR-003) whose last two digits check (BR-019)."""
    return bool(UIT_PATTERN.match(uit)) and uit[14:] == uit_check_digits(uit[:14])
