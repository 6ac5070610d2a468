"""SAF-T D406: JSON Lines -> streamed XML -> XSD (section by section) + business rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import SAFT_XSD, schemas_or_skip
from workers_core.artifacts.store import FilesystemArtifactStore
from workers_core.config import Settings
from workers_core.integrations.anaf.cui import with_check_digit
from workers_core.saft import SaftInputError, build_tree, generate, validate_file
from workers_core.saft.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, saft
from workers_core.saft.errors import MalformedXml
from workers_core.saft.model import DeclarationKind, period_problem
from workers_core.saft.rules import partner_id_problem
from workers_core.saft.sample import sample_header, write_sample
from workers_core.tasks.base import JobContext
from workers_core.tasks.saft import (
    GenerateD406,
    GeneratePayload,
    ValidateD406,
    ValidatePayload,
)

DATA = Path(__file__).parent.parent / "data" / "saft"


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def root() -> Path:
    """The schemas directory, or a skip that says how to provide it."""
    return schemas_or_skip(SAFT_XSD)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("saft") / "data"
    write_sample(data, 300, seed=7)
    return data


@pytest.fixture(scope="module")
def xml(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("saft-xml") / "d406.xml"
    generate(sample, target)
    return target


def _edit(xml: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = xml.read_text(encoding="utf-8")
    assert old in text
    out = tmp_path / "edited.xml"
    out.write_text(text.replace(old, new, 1), encoding="utf-8")
    return out


def test_sample_data_passes_the_xsd_and_every_rule(xml: Path, root: Path) -> None:
    report = validate_file(xml, root)
    assert report.ok, report.violations
    assert (report.gl_lines, report.declaration_kind) == (300, "L")
    assert report.total_debit == report.total_credit > 0


def test_output_is_in_the_filed_namespace_and_d406t_on_request(
    sample: Path, tmp_path: Path, root: Path
) -> None:
    header = sample_header().model_copy(update={"test_filing": True})
    target = tmp_path / "d406t.xml"
    generate(sample, target, header)
    report = validate_file(target, root)
    assert report.ok and report.test_filing
    assert report.namespace == "mfp:anaf:dgti:d406t:declaratie:v1"


def test_streaming_writer_and_whole_tree_give_the_same_bytes(sample: Path, xml: Path) -> None:
    assert build_tree(sample) == xml.read_bytes()


def test_the_small_checked_in_data_set_generates_a_valid_file(tmp_path: Path, root: Path) -> None:
    target = tmp_path / "d406.xml"
    summary = generate(DATA, target)
    assert summary.gl_lines == 12
    assert validate_file(target, root).ok


def test_unbalanced_transaction_is_reported_with_its_path(
    xml: Path, tmp_path: Path, root: Path
) -> None:
    text = xml.read_text(encoding="utf-8")
    start = text.index("<CreditAmount><Amount>") + len("<CreditAmount><Amount>")
    edited = tmp_path / "unbalanced.xml"
    edited.write_text(text[:start] + "1" + text[start:], encoding="utf-8")
    report = validate_file(edited, root)
    rules = report.rules()
    assert "SAFT-TRANSACTION-UNBALANCED" in rules and "SAFT-GL-UNBALANCED" in rules
    [v] = [v for v in report.violations if v.rule == "SAFT-TRANSACTION-UNBALANCED"]
    assert v.location == "/AuditFile/GeneralLedgerEntries/Journal[1]/Transaction[1]"
    assert v.line is not None and v.line > 1


def test_wrong_closing_balance_names_the_account(xml: Path, tmp_path: Path, root: Path) -> None:
    edited = _edit(
        xml,
        tmp_path,
        "<ClosingCreditBalance>100000.00</ClosingCreditBalance>",
        "<ClosingCreditBalance>99999.00</ClosingCreditBalance>",
    )
    report = validate_file(edited, root)
    assert report.rules() == ["SAFT-ACCOUNT-BALANCE"]
    [v] = report.violations
    assert v.location == "/AuditFile/MasterFiles/GeneralLedgerAccounts/Account[1]"
    assert "1012" in v.message


def test_bad_cui_check_digit_in_a_partner_id(xml: Path, tmp_path: Path, root: Path) -> None:
    good = with_check_digit(3000000)
    bad = good - 1 if good % 10 else good + 1
    edited = _edit(
        xml, tmp_path, f"<CustomerID>00{good}</CustomerID>", f"<CustomerID>00{bad}</CustomerID>"
    )
    report = validate_file(edited, root)
    assert "SAFT-PARTNER-ID" in report.rules()
    v = next(v for v in report.violations if v.rule == "SAFT-PARTNER-ID")
    assert v.location == "/AuditFile/MasterFiles/Customers/Customer[1]/CustomerID"
    assert "check digit" in v.message


def test_a_schema_error_in_a_streamed_transaction_has_a_named_path(
    xml: Path, tmp_path: Path, root: Path
) -> None:
    edited = _edit(xml, tmp_path, "<RecordID>10</RecordID>", "<RecordID>10</RecordID><X/>")
    report = validate_file(edited, root)
    [v] = report.violations
    assert v.rule == "XSD"
    assert v.location.startswith("/AuditFile/GeneralLedgerEntries/Journal[1]/Transaction[")
    assert v.location.endswith("/X")


def test_header_type_must_fit_the_period(xml: Path, tmp_path: Path, root: Path) -> None:
    edited = _edit(
        xml, tmp_path, "<HeaderComment>L</HeaderComment>", "<HeaderComment>T</HeaderComment>"
    )
    report = validate_file(edited, root)
    assert [(v.rule, v.location) for v in report.violations] == [
        ("SAFT-HEADER-PERIOD", "/AuditFile/Header/HeaderComment")
    ]


def test_line_without_tax_information_is_named(xml: Path, tmp_path: Path, root: Path) -> None:
    text = xml.read_text(encoding="utf-8")
    start = text.index("<TaxInformation>")
    end = text.index("</TaxInformation>") + len("</TaxInformation>")
    edited = tmp_path / "notax.xml"
    edited.write_text(text[:start] + text[end:], encoding="utf-8")
    report = validate_file(edited, root)
    assert "SAFT-TAX-INFORMATION" in report.rules() and "XSD" in report.rules()


def test_not_a_d406_is_refused(tmp_path: Path, root: Path) -> None:
    other = tmp_path / "other.xml"
    other.write_text("<Invoice xmlns='urn:x'/>", encoding="utf-8")
    with pytest.raises(MalformedXml):
        validate_file(other, root)


@pytest.mark.parametrize(
    ("kind", "start", "end", "ok"),
    [
        ("L", "2025-01-01", "2025-01-31", True),
        ("L", "2025-01-01", "2025-02-28", False),
        ("T", "2025-04-01", "2025-06-30", True),
        ("T", "2025-02-01", "2025-04-30", False),
        ("A", "2025-01-01", "2025-12-31", True),
        ("NT", "2025-01-01", "2025-03-31", True),
        ("C", "2025-01-10", "2025-03-05", True),
    ],
)
def test_period_fits_declaration_type(kind: str, start: str, end: str, ok: bool) -> None:
    import datetime as dt

    problem = period_problem(kind, dt.date.fromisoformat(start), dt.date.fromisoformat(end))
    assert (problem is None) == ok


def test_partner_id_prefixes() -> None:
    cui = with_check_digit(1854729)
    assert partner_id_problem(f"00{cui}") is None
    assert partner_id_problem("080000000000000") is None
    assert partner_id_problem(f"07{cui}") is not None
    assert partner_id_problem(f"00{cui + 1}") is not None


def test_transactions_out_of_journal_order_are_an_input_error(sample: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for f in sample.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    lines = (sample / "transactions.jsonl").read_text().splitlines()
    (data / "transactions.jsonl").write_text("\n".join([*lines[1:], lines[0]]) + "\n")
    with pytest.raises(SaftInputError, match="appears again"):
        generate(data, tmp_path / "x.xml")


def test_a_bad_record_names_its_file_and_line(sample: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for f in sample.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    (data / "accounts.jsonl").write_text('{"account_id": "1"}\n')
    with pytest.raises(SaftInputError, match=r"accounts.jsonl:1: "):
        generate(data, tmp_path / "x.xml")


def test_cli_generate_then_validate_exit_codes(sample: Path, tmp_path: Path, root: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "d406.xml"
    result = runner.invoke(saft, ["generate", str(sample), "-o", str(out)])
    assert result.exit_code == EXIT_OK, result.output
    assert "ok" in result.output
    bad = _edit(
        out, tmp_path, "<HeaderComment>L</HeaderComment>", "<HeaderComment>A</HeaderComment>"
    )
    result = runner.invoke(saft, ["validate", str(out), str(bad)])
    assert result.exit_code == EXIT_INVALID
    assert "SAFT-HEADER-PERIOD at /AuditFile/Header/HeaderComment" in result.output
    result = runner.invoke(saft, ["validate", "--json", str(bad)])
    assert result.exit_code == EXIT_INVALID
    [report] = json.loads(result.output)
    assert report["ok"] is False and report["violations"][0]["rule"] == "SAFT-HEADER-PERIOD"


def test_cli_generate_with_bad_input_is_a_usage_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    result = CliRunner().invoke(
        saft, ["generate", str(data), "-o", str(tmp_path / "x.xml"), "--no-validate"]
    )
    assert result.exit_code == EXIT_USAGE
    assert "header.json is missing" in result.output


def _jsonl_files(data_dir: Path) -> list[tuple[str, bytes]]:
    return [(f.name, f.read_bytes()) for f in sorted(data_dir.glob("*.jsonl"))]


def _ctx(tmp_path: Path, settings: Settings) -> JobContext:
    store = FilesystemArtifactStore(tmp_path / "artifacts", max_bytes=50_000_000, default_ttl_s=60)
    return JobContext(
        job_id="j1",
        task="saft.generate",
        queue="anaf.saft",
        attempt=1,
        max_attempts=2,
        correlation_id=None,
        settings=settings,
        artifacts=store,
    )


async def test_generate_task_stores_the_xml_and_a_clean_report(
    sample: Path, tmp_path: Path, root: Path
) -> None:
    settings = _settings()
    ctx = _ctx(tmp_path, settings)
    inputs = {}
    for name, data in _jsonl_files(sample):
        meta = await ctx.artifacts.put(data, "application/x-ndjson", filename=name)
        inputs[name.removesuffix(".jsonl")] = meta.id
    payload = GeneratePayload.model_validate(
        {"header": sample_header(DeclarationKind.MONTHLY).model_dump(mode="json"), "inputs": inputs}
    )
    result = await GenerateD406(settings).run(payload, ctx)
    assert result.report.ok and result.gl_lines == 300
    assert result.counts["transactions"] > 0
    checked = await ValidateD406(settings).run(
        ValidatePayload(xml_artifact_id=result.xml_artifact_id), ctx
    )
    assert checked.report.ok and checked.gl_lines == 300 and checked.declaration_kind == "L"


def _nomenclature(directory: Path, tax_codes: list[str], accounts: list[str]) -> Path:
    directory.mkdir()
    (directory / "tax_codes.csv").write_text("tax_type,tax_code,description\n"
                                             + "".join(f"{c},x\n" for c in tax_codes))
    (directory / "accounts.csv").write_text("account_id\n" + "".join(f"{a}\n" for a in accounts))
    return directory


CHART = ["1012", "371", "401", "411", "4426", "4427", "512", "707"]


def test_codes_on_anafs_lists_pass_and_the_check_is_not_skipped(
        xml: Path, tmp_path: Path, root: Path) -> None:
    lists = _nomenclature(tmp_path / "nom", ["300,310309"], CHART)
    report = validate_file(xml, root, nomenclature_dir=lists)
    assert report.ok, report.violations[:3]
    assert report.checks_skipped == []  # "5121" matched by its synthetic prefix "512"


def test_codes_missing_from_anafs_lists_are_named_with_their_location(
        xml: Path, tmp_path: Path, root: Path) -> None:
    lists = _nomenclature(tmp_path / "nom", ["300,310310"], [a for a in CHART if a != "707"])
    report = validate_file(xml, root, nomenclature_dir=lists)
    rules = report.rules()
    assert "SAFT-TAX-CODE-NOMENCLATURE" in rules and "SAFT-ACCOUNT-NOMENCLATURE" in rules
    account = next(v for v in report.violations if v.rule == "SAFT-ACCOUNT-NOMENCLATURE")
    assert account.location.startswith("/AuditFile/MasterFiles/GeneralLedgerAccounts/Account[")
    assert "'707'" in account.message
    tax = next(v for v in report.violations if v.rule == "SAFT-TAX-CODE-NOMENCLATURE")
    assert tax.location.endswith("/TaxInformation[1]") and "310309" in tax.message
    # the no-tax entry (000/000000) is never reported, whatever the list holds
    assert all("'000000'" not in v.message for v in report.violations)


def test_without_anafs_lists_the_report_says_the_check_was_skipped(
        xml: Path, tmp_path: Path, root: Path) -> None:
    report = validate_file(xml, root, nomenclature_dir=tmp_path / "absent")
    assert report.ok and len(report.checks_skipped) == 2
    assert "tax_codes.csv" in report.checks_skipped[0]


@pytest.mark.parametrize("kind", [DeclarationKind.ANNUAL, DeclarationKind.ON_REQUEST])
def test_assets_and_stock_are_written_and_checked(
        kind: DeclarationKind, tmp_path: Path, root: Path) -> None:
    data = tmp_path / "data"
    write_sample(data, 60, seed=2, kind=kind)
    target = tmp_path / "d406.xml"
    summary = generate(data, target)
    report = validate_file(target, root)
    assert report.ok, report.violations[:3]
    text = target.read_text()
    if kind == DeclarationKind.ANNUAL:
        assert summary.counts["assets"] == 3 and summary.counts["asset_transactions"] == 1
        assert "<BookValueEnd>6600.00</BookValueEnd>" in text
        streamed = validate_file(_edit(target, tmp_path, "<AssetTransactionDate>",
                                       "<AssetTransactionDate>not-a-date"), root)
        where = "/AuditFile/SourceDocuments/AssetTransactions/AssetTransaction[1]"
        broken_master = _edit(target, tmp_path, "<BookValueEnd>6600.00</BookValueEnd>", "")
        master = "/AuditFile/MasterFiles/Assets/Asset["
    else:
        assert summary.counts["stock"] == 1 and summary.counts["stock_movements"] == 2
        assert "<NumberOfMovementLines>2</NumberOfMovementLines>" in text
        streamed = validate_file(_edit(target, tmp_path, "<Quantity>-40</Quantity>",
                                       "<Quantity>lots</Quantity>"), root)
        where = "/AuditFile/SourceDocuments/MovementOfGoods/StockMovement[2]"
        broken_master = _edit(target, tmp_path, "<UOMPhysicalStock>H87</UOMPhysicalStock>", "")
        master = "/AuditFile/MasterFiles/PhysicalStock/PhysicalStockEntry["
    assert [v.rule for v in streamed.violations] and streamed.violations[0].rule == "XSD"
    assert streamed.violations[0].location.startswith(where), streamed.violations[0]
    skeleton = validate_file(broken_master, root)
    assert any(v.location.startswith(master) for v in skeleton.violations), skeleton.violations
