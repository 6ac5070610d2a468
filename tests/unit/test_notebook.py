"""notebooks/saft_batch.ipynb runs end to end (its own local Ray, in its own kernel process).

The notebook is executed with nbclient on small data in a temp OUT_DIR, with parameters
injected after its ``parameters`` cell the way papermill does it. The kernel gets an
environment without RAY_ADDRESS, so it starts (and shuts down) a local Ray of its own even
when this pytest process already runs one (tests/integration/conftest.py ``ray_session``).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.conftest import SAFT_XSD, schemas_or_skip

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "saft_batch.ipynb"
EXPECTED_RULES = {
    "44188624": {"SAFT-TRANSACTION-UNBALANCED", "SAFT-GL-UNBALANCED"},  # "unbalanced"
    "51200933": {"SAFT-PARTNER-ID"},  # "bad_partner_cui"
}
CLEAN = ("18547290", "21630513", "33401270")


@pytest.fixture(scope="module")
def schemas() -> Path:
    return schemas_or_skip(SAFT_XSD)


def _execute(out_dir: Path, cwd: Path, schemas: Path) -> nbformat.NotebookNode:
    """Run the notebook with papermill-style parameters injected after its parameters cell."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    overrides = "\n".join(
        [
            f"OUT_DIR = {str(out_dir)!r}",
            "LINES = 60",
            "COMPANIES = COMPANIES + "
            '[{"name": "Epsilon SRL", "cui": "51200933", "error": "bad_partner_cui"}]',
        ]
    )
    nb.cells.insert(
        index + 1, nbformat.v4.new_code_cell(overrides, metadata={"tags": ["injected-parameters"]})
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray of its own
    env.update(WORKERS_SCHEMAS_DIR=str(schemas), RAY_USAGE_STATS_ENABLED="0",
               RAY_raylet_start_wait_time_s="300", RAY_agent_register_timeout_ms="300000")
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute(env=env)
    return nb


def test_committed_notebook_has_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_saft_batch_notebook_runs(tmp_path: Path, schemas: Path) -> None:
    out_dir = tmp_path / "out"
    try:
        nb = _execute(out_dir, tmp_path, schemas)
    except CellExecutionError as first:
        # Ray's raylet gives its dashboard agent a hard-coded 15 s to write its ports, and
        # exits when that runs out (ray-project/ray#65983): seen once on a loaded 2-core
        # machine. One more try; a real error in the notebook fails both.
        print(f"first run failed, retrying once: {str(first)[-2000:]}")
        shutil.rmtree(out_dir, ignore_errors=True)
        nb = _execute(out_dir, tmp_path, schemas)

    for cui in (*CLEAN, *EXPECTED_RULES):
        xml = out_dir / f"D406L_{cui}_202501.xml"
        assert xml.stat().st_size > 10_000
        assert xml.read_bytes().startswith(b"<?xml")
    reports = {
        cui: json.loads((out_dir / f"D406L_{cui}_202501.report.json").read_text())
        for cui in (*CLEAN, *EXPECTED_RULES)
    }
    for cui in CLEAN:
        assert reports[cui]["ok"], reports[cui]["violations"]
        assert reports[cui]["gl_lines"] == 60
    for cui, expected in EXPECTED_RULES.items():
        assert not reports[cui]["ok"]
        assert expected <= {v["rule"] for v in reports[cui]["violations"]}
    partner = reports["51200933"]["violations"]
    assert [v["location"] for v in partner] == [
        "/AuditFile/MasterFiles/Customers/Customer[1]/CustomerID"
    ]

    with (out_dir / "summary.csv").open(encoding="utf-8") as f:
        summary = {row["cui"]: row for row in csv.DictReader(f)}
    assert set(summary) == {*CLEAN, *EXPECTED_RULES}
    assert [summary[c]["ok"] for c in CLEAN] == ["True"] * 3
    assert "SAFT-TRANSACTION-UNBALANCED" in summary["44188624"]["rules"]

    printed = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "Delta Import SRL (44188624): SAFT-TRANSACTION-UNBALANCED" in printed
    assert "done in" in printed  # the last cell ran: ray.shutdown() included
