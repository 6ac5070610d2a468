"""e-Transport: JSON declaration -> v2 XML -> XSD v2 + Schematron 2.0.2; UIT; applicability."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from workers_core.config import Settings
from workers_core.efactura import SchemasUnavailable, schemas_root
from workers_core.etransport import (
    Declaration,
    OperationType,
    Shipment,
    ShipmentLine,
    build_xml,
    needs_etransport,
    uit_check_digits,
    uit_is_valid,
    validator_for,
)
from workers_core.etransport.cli import etransport

DATA = Path(__file__).parent.parent / "data" / "etransport"
# The examples listed in the Schematron 2.0.2 next to rule BR-019.
SCHEMATRON_UITS = ["3V0P0L0P0T3JUW46", "4C0U0C0J0W3DDQ92", "5Y0Q0L0A0Y3AJA00", "0C1E0K0N0M3EHP79"]


@pytest.fixture(scope="module")
def check() -> Any:
    """Validate bytes with the process's validator, or skip saying how to provide schemas."""
    try:
        root = schemas_root(Settings(_env_file=None))
        return validator_for(root.resolve()).validate
    except SchemasUnavailable as exc:
        pytest.skip(f"e-Transport schemas absent: {exc.message}")


def _data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "declaration.json").read_text(encoding="utf-8"))
    return copy.deepcopy(data)


def _export() -> dict[str, Any]:
    data = _data()
    n = data["notification"]
    n["operation"] = 50
    for line in n["goods"]:
        line["purpose"] = 9999
    n["partner"] = {"country": "US", "name": "IMPORTER INC"}
    n["end"] = {"customs_office": 132904}  # BVF Constanța Port
    return data


# --- XML against the official rules ------------------------------------------------------


def test_the_example_notification_passes_the_xsd_and_the_schematron(check: Any) -> None:
    report = check(build_xml(Declaration.model_validate(_data())))
    assert report.ok, report.errors
    assert report.schematron_ran and report.kind == "notificare"


def test_an_export_ending_at_a_customs_office_passes(check: Any) -> None:
    report = check(build_xml(Declaration.model_validate(_export())))
    assert report.ok, report.errors


def test_a_deletion_of_a_valid_uit_passes(check: Any) -> None:
    xml = build_xml(Declaration(declarant_code="18547290", deletion=SCHEMATRON_UITS[0]))
    report = check(xml)
    assert report.ok, report.errors
    assert report.kind == "stergere"


def test_gross_weight_below_net_fails_br_020_at_the_goods_line(check: Any) -> None:
    xml = build_xml(Declaration.model_validate(_data()))
    broken = xml.replace(b'greutateBruta="810"', b'greutateBruta="700"')
    report = check(broken)
    assert report.rule_ids() == ["BR-020"]
    assert "bunuriTransportate" in report.errors[0].location


def test_attribute_rules_fire_a_wrong_uit_check_digit_fails_br_019(check: Any) -> None:
    data = _data()
    data["notification"]["corrects"] = SCHEMATRON_UITS[0]
    xml = build_xml(Declaration.model_validate(data))
    report = check(xml.replace(SCHEMATRON_UITS[0].encode(), b"3V0P0L0P0T3JUW47"))
    assert report.rule_ids() == ["BR-019"]
    assert report.errors[0].location.endswith("@uit")


def test_a_domestic_transport_to_a_foreign_partner_fails_br_005(check: Any) -> None:
    xml = build_xml(Declaration.model_validate(_data()))
    report = check(xml.replace(b'codTara="RO"', b'codTara="DE"'))
    assert "BR-005" in report.rule_ids()


def test_a_type_error_stops_at_the_xsd(check: Any) -> None:
    xml = build_xml(Declaration.model_validate(_data()))
    report = check(xml.replace(b'nrVehicul="B123ABC"', b'nrVehicul="b 123"'))
    assert report.rule_ids() == ["XSD"] and not report.schematron_ran


# --- the model rejects early, naming the rule ---------------------------------------------


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (lambda n: n["goods"][0].update(gross_weight_kg="100"), "BR-020"),
        (lambda n: n["partner"].update(country="DE"), "BR-005"),
        (lambda n: n["goods"][0].update(purpose=9999), "BR-070"),
        (lambda n: n["goods"][0].pop("tariff_code"), "BR-206"),
        (lambda n: n["start"].update(border_point=3), "BR-210/BR-211"),
        (lambda n: n["documents"][0].update(type=9999), "BR-026"),
        (lambda n: n.update(corrects="3V0P0L0P0T3JUW47"), "BR-019"),
    ],
)
def test_the_model_refuses_a_broken_declaration_with_the_rule_id(change: Any, rule: str) -> None:
    data = _data()
    change(data["notification"])
    with pytest.raises(ValidationError, match=rf"\[{rule}\]"):
        Declaration.model_validate(data)


def test_a_declaration_is_exactly_one_kind() -> None:
    data = _data()
    data["deletion"] = SCHEMATRON_UITS[0]
    with pytest.raises(ValidationError, match="exactly one of"):
        Declaration.model_validate(data)


# --- UIT ---------------------------------------------------------------------------------


@pytest.mark.parametrize("uit", SCHEMATRON_UITS)
def test_the_schematron_example_uits_check(uit: str) -> None:
    assert uit_is_valid(uit)
    assert uit_check_digits(uit[:14]) == uit[14:]


@pytest.mark.parametrize(
    "uit",
    ["3V0P0L0P0T3JUW47", "3V0P0L0P0T3JUW4", "3V0P0L0P0T3JUO46", "3v0p0l0p0t3juw46"],
)
def test_a_uit_with_a_bad_digit_length_or_letter_is_refused(uit: str) -> None:
    assert not uit_is_valid(uit)


# --- applicability -----------------------------------------------------------------------

RISK = ["2203", "2204", "0201"]  # stands in for the OPANAF 802/2022 list (caller's data)


def _shipment(operation: int, *lines: tuple[str, str, str], mtma: str | None = None) -> Shipment:
    return Shipment(
        operation=OperationType(operation),
        lines=[
            ShipmentLine(tariff_code=c, gross_weight_kg=Decimal(w), value_ron=Decimal(v))
            for c, w, v in lines
        ],
        vehicle_max_mass_kg=Decimal(mtma) if mtma else None,
    )


def test_domestic_high_risk_goods_over_500_kg_need_a_uit() -> None:
    verdict = needs_etransport(_shipment(30, ("22030001", "600", "900")), RISK)
    assert verdict.required and any("> 500 kg" in r for r in verdict.reasons)


def test_domestic_high_risk_goods_over_10000_lei_but_light_need_a_uit() -> None:
    verdict = needs_etransport(_shipment(30, ("22042100", "40", "10000.01")), RISK)
    assert verdict.required and any("10 000 lei" in r for r in verdict.reasons)


def test_domestic_goods_off_the_risk_list_need_none_whatever_their_value() -> None:
    verdict = needs_etransport(_shipment(30, ("84713000", "900", "50000")), RISK)
    assert not verdict.required


def test_only_the_risky_lines_count_toward_the_domestic_thresholds() -> None:
    verdict = needs_etransport(
        _shipment(30, ("22030001", "300", "2000"), ("84713000", "900", "50000")), RISK
    )
    assert not verdict.required and verdict.gross_weight_kg == Decimal(300)


def test_an_international_transport_counts_all_goods() -> None:
    verdict = needs_etransport(_shipment(20, ("84713000", "501", "100")), RISK)
    assert verdict.required


def test_value_exactly_10000_lei_and_500_kg_is_not_over_the_threshold() -> None:
    assert not needs_etransport(_shipment(20, ("84713000", "500", "10000")), RISK).required


def test_a_vehicle_under_2_5_t_is_out_of_scope() -> None:
    verdict = needs_etransport(_shipment(20, ("22030001", "900", "50000"), mtma="2400"), RISK)
    assert not verdict.required


# --- CLI ---------------------------------------------------------------------------------


def test_cli_build_writes_the_xml_and_validates_it(check: Any, tmp_path: Path) -> None:
    source = tmp_path / "decl.json"
    source.write_text(json.dumps(_data()), encoding="utf-8")
    result = CliRunner().invoke(etransport, ["build", str(source)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "decl.xml").is_file() and "ok (notificare)" in result.output


def test_cli_validate_names_the_rule_and_exits_3(check: Any, tmp_path: Path) -> None:
    xml = build_xml(Declaration.model_validate(_data()))
    bad = tmp_path / "bad.xml"
    bad.write_bytes(xml.replace(b'greutateBruta="810"', b'greutateBruta="700"'))
    result = CliRunner().invoke(etransport, ["validate", "--json", str(bad)])
    assert result.exit_code == 3
    (report,) = json.loads(result.output)
    assert [e["rule_id"] for e in report["errors"]] == ["BR-020"]


def test_cli_build_refuses_an_invalid_json_with_exit_2(tmp_path: Path) -> None:
    data = _data()
    data["notification"]["goods"][0]["gross_weight_kg"] = "1"
    source = tmp_path / "decl.json"
    source.write_text(json.dumps(data), encoding="utf-8")
    result = CliRunner().invoke(etransport, ["build", str(source)])
    assert result.exit_code == 2 and "BR-020" in result.output
