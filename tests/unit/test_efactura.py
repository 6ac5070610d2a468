"""e-Factura: JSON invoice -> CIUS-RO UBL -> UBL 2.1 XSD + CIUS-RO 1.0.9 Schematron."""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from tests.conftest import schemas_or_skip
from workers_core.config import Settings
from workers_core.efactura import (
    Invoice,
    SchemasUnavailable,
    UnsafeXml,
    ValidationReport,
    build_xml,
    compute_totals,
    schemas_root,
    validator_for,
)
from workers_core.efactura.cli import efactura
from workers_core.efactura.errors import MalformedXml

DATA = Path(__file__).parent.parent / "data" / "efactura"


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def root() -> Path:
    """The schemas directory, or a skip that says how to provide it."""
    return schemas_or_skip()


@pytest.fixture(scope="module")
def check(root: Path) -> Any:
    """Validate bytes with the process's validator (the XSLT compiles once, here)."""
    validator = validator_for(root.resolve())
    return validator.validate


def _data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "invoice.json").read_text(encoding="utf-8"))
    return data


def _invoice(**changes: Any) -> Invoice:
    data = copy.deepcopy(_data())
    data.update(changes)
    return Invoice.model_validate(data)


def _line(price: str, qty: str = "1", **extra: Any) -> dict[str, Any]:
    return {"name": "x", "quantity": qty, "unit_price": price, "vat_percent": "19", **extra}


# --- model -------------------------------------------------------------------------------


def test_bucharest_city_must_be_a_sector_br_ro_101() -> None:
    data = _data()
    data["customer"]["address"].update(city="Bucuresti", county="RO-B")
    with pytest.raises(ValidationError) as info:
        Invoice.model_validate(data)
    (error,) = info.value.errors()
    assert error["loc"] == ("customer", "address")
    assert "[BR-RO-101]" in error["msg"]


def test_sector_spelling_is_normalised_to_the_code_list() -> None:
    assert _invoice().supplier.address.city == "SECTOR3"


def test_romanian_county_must_be_iso_3166_2_br_ro_110() -> None:
    data = _data()
    data["supplier"]["address"]["county"] = "Cluj"
    with pytest.raises(ValidationError, match=r"BR-RO-110"):
        Invoice.model_validate(data)


def test_cui_check_digit_is_verified_and_ro_prefix_kept() -> None:
    data = _data()
    data["customer"]["tax_id"] = "12345678"
    with pytest.raises(ValidationError, match="check digit"):
        Invoice.model_validate(data)
    data["customer"]["tax_id"] = "ro 4264242"
    customer = Invoice.model_validate(data).customer
    assert (customer.tax_id, customer.legal_id, customer.vat_registered) == (
        "RO4264242",
        "4264242",
        True,
    )


def test_foreign_currency_needs_vat_total_in_ron_br_ro_030() -> None:
    with pytest.raises(ValidationError, match="BR-RO-030"):
        _invoice(currency="EUR")


def test_exempt_category_needs_an_exemption_reason() -> None:
    with pytest.raises(ValidationError, match="E need vat_exemptions"):
        _invoice(vat_exemptions={})


def test_vat_rate_must_fit_the_category() -> None:
    with pytest.raises(ValidationError, match="BR-O-05"):
        _invoice(lines=[_line("1", vat_category="O")])
    with pytest.raises(ValidationError, match="BR-S-05"):
        _invoice(lines=[{"name": "x", "quantity": "1", "unit_price": "1"}])


def test_credit_transfer_needs_a_valid_iban() -> None:
    with pytest.raises(ValidationError, match="BR-61"):
        _invoice(payment_means={"code": "30"})
    with pytest.raises(ValidationError, match="mod-97"):
        _invoice(payment_means={"code": "30", "iban": "RO49AAAA1B31007593840001"})


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        _invoice(discount="5%")


# --- totals ------------------------------------------------------------------------------


def test_amounts_round_half_up_from_the_json_text() -> None:
    # 1.005 as a float is 1.00499...; parsed from JSON as a Decimal it rounds up.
    raw = json.dumps(_data()).replace('"amount": "10.005"', '"amount": 1.005')
    invoice = Invoice.model_validate_json(raw)
    assert invoice.lines[1].allowances[0].amount == Decimal("1.01")


def test_line_net_rounds_once_after_allowances() -> None:
    invoice = _invoice(
        lines=[
            _line("0.125", "1"),
            _line("333.33", "2.5", allowances=[{"amount": "10.005", "reason": "r"}]),
        ],
        allowances_charges=[],
    )
    totals = compute_totals(invoice)
    # 0.125 -> 0.13 (half-up, not banker's 0.12); 833.325 - 10.01 = 823.315 -> 823.32.
    assert totals.line_nets == (Decimal("0.13"), Decimal("823.32"))


def test_vat_is_rounded_per_breakdown_not_per_line() -> None:
    invoice = _invoice(lines=[_line("1.01")] * 3, allowances_charges=[], prepaid_amount="0")
    totals = compute_totals(invoice)
    (group,) = totals.breakdown
    # Per line 0.1919 -> 0.19, three lines 0.57; on the group 3.03 * 19% = 0.5757 -> 0.58.
    assert (group.taxable_amount, group.vat_amount) == (Decimal("3.03"), Decimal("0.58"))
    assert totals.payable == Decimal("3.61")


def test_document_totals_of_the_fixture() -> None:
    totals = compute_totals(_invoice())
    assert totals.line_total == Decimal("4666.92")  # BT-106
    assert (totals.allowance_total, totals.charge_total) == (Decimal("15.50"), Decimal("25.00"))
    assert totals.tax_exclusive == Decimal("4676.42")  # BT-109
    assert [(b.category.value, b.taxable_amount, b.vat_amount) for b in totals.breakdown] == [
        ("S", Decimal("4536.52"), Decimal("861.94")),
        ("S", Decimal("89.90"), Decimal("4.50")),  # 4.495 -> 4.50
        ("E", Decimal("50.00"), Decimal("0.00")),
    ]
    assert totals.tax_inclusive == Decimal("5542.86")  # BT-112
    assert totals.payable == Decimal("5442.86")  # BT-115, after 100 prepaid


# --- XSD + Schematron --------------------------------------------------------------------


def test_invoice_from_json_passes_xsd_and_cius_ro(check: Any) -> None:
    report: ValidationReport = check(build_xml(_invoice()))
    assert report.schematron_ran
    assert report.ok, report.errors


def test_credit_note_passes_xsd_and_cius_ro(check: Any) -> None:
    invoice = _invoice(type_code="381", preceding_invoice="FCT-2025-0041", prepaid_amount="0")
    xml = build_xml(invoice)
    assert b"<CreditNote " in xml and b"<cac:CreditNoteLine>" in xml
    report = check(xml)
    assert (report.document, report.ok) == ("CreditNote", True), report.errors


def test_foreign_currency_invoice_passes(check: Any) -> None:
    report = check(build_xml(_invoice(currency="EUR", vat_total_ron="4311.02")))
    assert report.ok, report.errors


def test_bucharest_address_without_sector_fails_br_ro_100(check: Any) -> None:
    xml = build_xml(_invoice()).replace(b"SECTOR3", b"Bucuresti")
    report = check(xml)
    assert report.rule_ids() == ["BR-RO-100"]
    (issue,) = report.errors
    assert issue.location.startswith("/*:Invoice[namespace-uri()=")
    assert "(BT-37)" in issue.text


def test_hand_edited_total_fails_br_co_rules(check: Any) -> None:
    xml = build_xml(_invoice()).replace(
        b'<cbc:LineExtensionAmount currencyID="RON">4666.92<',
        b'<cbc:LineExtensionAmount currencyID="RON">4667.92<',
    )
    report = check(xml)
    assert "BR-CO-10" in report.rule_ids()
    assert all(i.rule_id.startswith("BR-CO-") for i in report.errors)
    assert any("LegalMonetaryTotal" in i.location for i in report.errors)


def test_xsd_errors_stop_before_the_rules(check: Any) -> None:
    xml = build_xml(_invoice()).replace(b"<cbc:ID>FCT", b"<cbc:Bogus>x</cbc:Bogus><cbc:ID>FCT")
    report = check(xml)
    assert not report.schematron_ran
    assert report.rule_ids() == ["XSD"]


def test_anaf_examples_fail_only_br_ro_001_under_1_0_9(check: Any, root: Path) -> None:
    examples = root / "anaf" / "efactura" / "examples"
    for name in ("eInvoice_ex.xml", "creditNote_ex.xml"):
        xml = (examples / name).read_bytes()
        assert check(xml).rule_ids() == ["BR-RO-001"], name
        current = re.sub(rb"CIUS-RO:1\.0\.0", b"CIUS-RO:1.0.1", xml)
        assert check(current).ok, name


def test_doctype_with_external_entity_is_refused_unread(check: Any, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xml = (
        build_xml(_invoice())
        .replace(
            b"<Invoice ",
            f'<!DOCTYPE Invoice [<!ENTITY x SYSTEM "{secret.as_uri()}">]>\n<Invoice '.encode(),
        )
        .replace(b"Strada Academiei 14", b"&x;")
    )
    with pytest.raises(UnsafeXml) as info:
        check(xml)
    assert "TOP-SECRET" not in str(info.value.message)


def test_entity_bomb_and_external_dtd_are_refused(check: Any) -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><r>&b;</r>'
    )
    external = b'<!DOCTYPE Invoice SYSTEM "http://127.0.0.1:9/x.dtd"><Invoice/>'
    for xml in (bomb, external):
        with pytest.raises(UnsafeXml):
            check(xml)


def test_non_ubl_root_is_malformed(check: Any) -> None:
    with pytest.raises(MalformedXml, match="neither"):
        check(b"<Invoice/>")
    with pytest.raises(MalformedXml, match="well-formed"):
        check(b"<Invoice>")


def test_missing_schemas_dir_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SchemasUnavailable, match="WORKERS_SCHEMAS_DIR"):
        schemas_root(_settings(schemas_dir=tmp_path / "nope"))


# --- CLI ---------------------------------------------------------------------------------


@pytest.fixture
def cli(root: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("WORKERS_SCHEMAS_DIR", str(root))
    return CliRunner()


def test_cli_validate_prints_ok_and_rule_ids(cli: CliRunner, root: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.xml"
    good.write_bytes(build_xml(_invoice()))
    result = cli.invoke(efactura, ["validate", str(good)])
    assert (result.exit_code, result.output) == (0, f"{good}: ok\n")

    example = root / "anaf" / "efactura" / "examples" / "eInvoice_ex.xml"
    result = cli.invoke(efactura, ["validate", str(good), str(example)])
    assert result.exit_code == 3
    assert f"{example}: failed BR-RO-001\n  BR-RO-001 at /*:Invoice" in result.output


def test_cli_validate_json(cli: CliRunner, root: Path) -> None:
    example = root / "anaf" / "efactura" / "examples" / "creditNote_ex.xml"
    result = cli.invoke(efactura, ["validate", "--json", str(example)])
    assert result.exit_code == 3
    (report,) = json.loads(result.output)
    assert (report["ok"], report["document"]) == (False, "CreditNote")
    assert report["errors"][0]["rule_id"] == "BR-RO-001"


def test_cli_build_writes_and_validates(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "out.xml"
    result = cli.invoke(efactura, ["build", str(DATA / "invoice.json"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{out}: ok" in result.output
    assert out.read_bytes().startswith(b"<?xml")


def test_cli_build_reports_invalid_json(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    data = _data()
    data["supplier"]["address"]["city"] = "Bucuresti"
    bad.write_text(json.dumps(data))
    result = cli.invoke(efactura, ["build", str(bad)])
    assert result.exit_code == 2
    assert "supplier.address: Value error, [BR-RO-100]" in result.output


def test_cli_without_schemas_exits_7(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKERS_SCHEMAS_DIR", str(tmp_path / "nope"))
    (tmp_path / "x.xml").write_bytes(b"<x/>")
    result = CliRunner().invoke(efactura, ["validate", str(tmp_path / "x.xml")])
    assert result.exit_code == 7
    assert "WORKERS_SCHEMAS_DIR" in result.output
