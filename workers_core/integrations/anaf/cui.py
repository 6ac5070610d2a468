"""The Romanian fiscal code (CUI/CIF): normalising "RO 123" to a number and checking its digit.

Rule (python-stdnum ``ro/cui.py``; DUKIntegrator): 2-10 digits, no leading zero, the last one
a check digit. Left-pad the other digits to 9, weight them with the control key 753217532,
sum, multiply by 10, take it mod 11 (10 counts as 0). A ``RO`` prefix only says the company
is VAT-registered and is stripped.
"""

from __future__ import annotations

import re

CONTROL_KEY = (7, 5, 3, 2, 1, 7, 5, 3, 2)


class InvalidCui(ValueError):
    """The text is not a CUI; ``reason`` says why in a few words (for job results)."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"{text!r} is not a valid CUI: {reason}")
        self.text = text
        self.reason = reason


def check_digit(body: str) -> int:
    """The check digit for a CUI without its last digit (1-9 digits)."""
    digits = [int(c) for c in body.rjust(9, "0")]
    total = sum(d * w for d, w in zip(digits, CONTROL_KEY, strict=True))
    return total * 10 % 11 % 10


def normalise_cui(value: str | int) -> int:
    """``"RO 18547290"``, ``"ro18547290"``, ``18547290`` → ``18547290``; raises ``InvalidCui``."""
    text = str(value)
    compact = re.sub(r"[\s.\-]", "", text).upper().removeprefix("RO")
    if not compact.isascii() or not compact.isdigit():
        raise InvalidCui(text, "not a number")
    if compact.startswith("0"):
        raise InvalidCui(text, "leading zero")
    if not 2 <= len(compact) <= 10:
        raise InvalidCui(text, "must have 2 to 10 digits")
    if check_digit(compact[:-1]) != int(compact[-1]):
        raise InvalidCui(text, "wrong check digit")
    return int(compact)


def is_valid_cui(value: str | int) -> bool:
    try:
        normalise_cui(value)
    except InvalidCui:
        return False
    return True


def with_check_digit(body: int) -> int:
    """The valid CUI that starts with ``body`` (for fixtures and the sandbox registry)."""
    return body * 10 + check_digit(str(body))
