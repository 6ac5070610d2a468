"""The CUI check digit (control key 753217532), with real CUIs from notes/anaf.md §1.4."""

from __future__ import annotations

import pytest

from workers_core.integrations.anaf.cui import (
    InvalidCui,
    check_digit,
    is_valid_cui,
    normalise_cui,
    with_check_digit,
)


@pytest.mark.parametrize("cui", ["18547290", "4264242", "27193515", "12345674"])
def test_real_cuis_pass_the_check_digit(cui: str) -> None:
    assert normalise_cui(cui) == int(cui)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("RO18547290", 18547290),
        ("ro 18547290", 18547290),
        (" RO 4264242 ", 4264242),
        (27193515, 27193515),
        ("12.345.674", 12345674),
    ],
)
def test_prefix_spaces_and_dots_are_normalised(text: str | int, expected: int) -> None:
    assert normalise_cui(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("12345678", "wrong check digit"),
        ("RO18547291", "wrong check digit"),
        ("018547290", "leading zero"),
        ("1", "must have 2 to 10 digits"),
        ("12345678901", "must have 2 to 10 digits"),
        ("RO", "not a number"),
        ("18547A90", "not a number"),
        ("\uff11\uff12\uff13", "not a number"),
        ("", "not a number"),
    ],
)
def test_invalid_cuis_say_why(text: str, reason: str) -> None:
    with pytest.raises(InvalidCui) as info:
        normalise_cui(text)
    assert info.value.reason == reason
    assert not is_valid_cui(text)


def test_a_remainder_of_ten_gives_check_digit_zero() -> None:
    # 1854729: weighted sum 111 -> 1110 mod 11 = 10 -> 0 (18547290 is valid).
    assert check_digit("1854729") == 0


def test_with_check_digit_builds_valid_cuis() -> None:
    assert with_check_digit(1854729) == 18547290
    assert all(is_valid_cui(with_check_digit(body)) for body in range(1000000, 1000500))
