"""SAF-T inputs as CSV and Parquet tables: the same D406 as from JSON Lines, clear errors."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from tests.conftest import schemas_or_skip
from workers_core.artifacts import artifact_store_from_settings
from workers_core.config import Settings
from workers_core.saft import SaftInputError, generate
from workers_core.saft.cli import saft
from workers_core.saft.inputs import input_path, read_typed
from workers_core.saft.model import INPUT_FILES, Account, Asset, Transaction
from workers_core.saft.sample import write_sample
from workers_core.saft.tabular import convert_jsonl
from workers_core.tasks.base import JobContext
from workers_core.tasks.saft import GenerateD406, GeneratePayload


@pytest.fixture(scope="module")
def jsonl_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("saft-tables") / "jsonl"
    write_sample(data, 120, seed=3)
    return data


@pytest.fixture(scope="module")
def jsonl_xml(jsonl_data: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    target = tmp_path_factory.mktemp("saft-tables-xml") / "d406.xml"
    generate(jsonl_data, target)
    return target.read_bytes()


def _as_tables(source: Path, target: Path, fmt: str) -> Path:
    target.mkdir()
    shutil.copy(source / "header.json", target / "header.json")
    for kind in INPUT_FILES:
        jsonl = input_path(source, kind, "jsonl")
        if jsonl.is_file():
            convert_jsonl(jsonl, input_path(target, kind, fmt), fmt, kind)  # type: ignore[arg-type]
    return target


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_table_data_set_gives_the_same_d406_as_json_lines(
        jsonl_data: Path, jsonl_xml: bytes, tmp_path: Path, fmt: str) -> None:
    data = _as_tables(jsonl_data, tmp_path / fmt, fmt)
    assert not list(data.glob("*.jsonl")) and list(data.glob(f"*.{fmt}"))
    rows = (data / "transactions.csv").read_text().count("\n") - 1 if fmt == "csv" else None
    transactions = sum(1 for _ in read_typed(data, "transactions", Transaction))
    assert rows is None or rows > transactions  # a row per GL line, folded back per transaction
    target = tmp_path / "d406.xml"
    generate(data, target)
    assert target.read_bytes() == jsonl_xml


def test_typed_parquet_columns_floats_and_dates_read_exactly(tmp_path: Path) -> None:
    table = pa.table({
        "account_id": ["4111", "5121"], "description": ["Clienți", "Conturi la bănci"],
        "account_type": ["Activ", "Activ"],
        "opening_debit": [0.1, 1234.56], "closing_debit": [0.3, None],
    })
    pq.write_table(table, tmp_path / "accounts.parquet")
    accounts = list(read_typed(tmp_path, "accounts", Account))
    assert [str(a.opening_debit) for a in accounts] == ["0.1", "1234.56"]
    assert [str(a.closing_debit) for a in accounts] == ["0.3", "0"]
    lines = pa.table({
        "journal_id": ["J1", "J1"], "transaction_id": ["T1", "T1"],
        "date": [dt.date(2025, 1, 5)] * 2, "description": ["Încasare"] * 2,
        "line.record_id": ["1", "2"], "line.account_id": ["5121", "4111"],
        "line.debit": [100.0, None], "line.credit": [None, 100.0],
        "line.description": ["bancă", "client"],
    })
    pq.write_table(lines, tmp_path / "transactions.parquet")
    [transaction] = read_typed(tmp_path, "transactions", Transaction)
    assert transaction.date == dt.date(2025, 1, 5)
    assert [(str(x.debit), str(x.credit)) for x in transaction.lines] == [("100.0", "0"),
                                                                          ("0", "100.0")]
    assert transaction.lines[0].taxes[0].tax_type == "000"  # the default, as in JSON Lines


def test_a_bad_csv_cell_names_its_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "accounts.csv").write_text(
        "account_id,description,account_type,opening_debit\n"
        "4111,Clienți,Activ,10\n"
        "5121,Bănci,Activ,zece\n")
    with pytest.raises(SaftInputError, match=r"accounts\.csv:3: opening_debit: "):
        list(read_typed(tmp_path, "accounts", Account))


def test_a_transaction_id_repeated_with_other_values_is_refused(tmp_path: Path) -> None:
    (tmp_path / "transactions.csv").write_text(
        "journal_id,transaction_id,date,description,line.record_id,line.account_id,"
        "line.debit,line.credit,line.description\n"
        "J1,T1,2025-01-05,Încasare,1,5121,100,,bancă\n"
        "J1,T1,2025-01-06,Încasare,2,4111,,100,client\n")
    with pytest.raises(SaftInputError, match=r"transactions\.csv:3: transaction_id 'T1' repeats "
                                              r"with other values of date"):
        list(read_typed(tmp_path, "transactions", Transaction))


def test_two_formats_of_one_kind_are_refused(tmp_path: Path) -> None:
    (tmp_path / "accounts.csv").write_text("account_id\n")
    (tmp_path / "accounts.jsonl").write_text("")
    with pytest.raises(SaftInputError, match=r"accounts\.jsonl and accounts\.csv both hold"):
        list(read_typed(tmp_path, "accounts", Account))


def test_a_file_that_is_not_parquet_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "accounts.parquet").write_bytes(b"account_id,description\n")
    with pytest.raises(SaftInputError, match=r"accounts\.parquet: not a Parquet file"):
        list(read_typed(tmp_path, "accounts", Account))


def test_cli_sample_in_csv_then_generate(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "data"
    result = runner.invoke(saft, ["sample", str(data), "--lines", "40", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert (data / "transactions.csv").is_file() and not (data / "transactions.jsonl").exists()
    result = runner.invoke(saft, ["generate", str(data), "-o", str(tmp_path / "d.xml"),
                                  "--no-validate"])
    assert result.exit_code == 0, result.output
    assert b"<GeneralLedgerEntries>" in (tmp_path / "d.xml").read_bytes()


async def test_generate_task_takes_csv_and_parquet_artifacts_from_redis(
        jsonl_data: Path, jsonl_xml: bytes, tmp_path: Path, settings: Settings) -> None:
    schemas_or_skip()
    settings = settings.model_copy(update={"artifact_max_bytes": 50_000_000})
    artifacts = artifact_store_from_settings(settings)
    ctx = JobContext(job_id="j-tables", task="saft.generate", queue="anaf.saft", attempt=1,
                     max_attempts=2, correlation_id=None, settings=settings,
                     artifacts=artifacts)
    csv_dir = _as_tables(jsonl_data, tmp_path / "csv", "csv")
    parquet_dir = _as_tables(jsonl_data, tmp_path / "parquet", "parquet")
    inputs = {}
    for n, kind in enumerate(k for k in INPUT_FILES if input_path(csv_dir, k, "csv").is_file()):
        if n % 2:  # half the kinds as CSV, half as Parquet (sent as octet-stream)
            path = input_path(parquet_dir, kind, "parquet")
            content_type = "application/octet-stream"
        else:
            path, content_type = input_path(csv_dir, kind, "csv"), "text/csv; charset=utf-8"
        inputs[kind] = (await artifacts.put_file(path, content_type)).id
    payload = GeneratePayload.model_validate({
        "header": json.loads((jsonl_data / "header.json").read_text()), "inputs": inputs})
    result = await GenerateD406(settings).run(payload, ctx)
    assert result.report.ok, result.report.shown
    out = tmp_path / "out.xml"
    await artifacts.get_to_file(result.xml_artifact_id, out)
    assert out.read_bytes() == jsonl_xml
    await artifacts.redis.aclose()  # type: ignore[attr-defined]


def test_assets_have_no_flat_form_and_say_so(tmp_path: Path) -> None:
    (tmp_path / "assets.csv").write_text("asset_id\nMF1\n")
    with pytest.raises(SaftInputError, match=r"assets have no flat form"):
        list(read_typed(tmp_path, "assets", Asset))
    runner = CliRunner()
    data = tmp_path / "data"
    result = runner.invoke(saft, ["sample", str(data), "--lines", "40", "--kind", "A",
                                  "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert (data / "assets.jsonl").is_file() and (data / "transactions.csv").is_file()
