"""`workers-core validate` against the live session platform and against nothing."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tests.conftest import free_port
from tests.integration.conftest import Platform
from workers_core.cli import EXIT_UNAVAILABLE, main


def test_validate_passes_on_the_live_platform(platform: Platform) -> None:
    result = CliRunner().invoke(main, ["validate", "--url", platform.url, "--json"])
    report = json.loads(result.output)
    failing = [c for c in report["checks"] if c["outcome"] == "FAIL"]
    assert result.exit_code == 0, failing
    assert report["ok"] is True
    names = {c["name"]: c["outcome"] for c in report["checks"]}
    assert names["api"] == names["redis"] == names["echo"] == "ok"
    for queue in ("debug", "email.send", "notify.slack"):
        assert names[f"pool {queue}"] == names[f"queue {queue}"] == "ok"
    # /v1/workers: a healthy worker per queue when the registry serves it, else a warning.
    assert names["workers"] in ("ok", "warn"), report
    if names["workers"] == "ok":
        assert names["worker debug"] == "ok", report


def test_validate_report_has_a_line_per_check(platform: Platform) -> None:
    result = CliRunner().invoke(main, ["validate", "--url", platform.url])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"workers-core validate {platform.url}"
    assert any(line.split()[:2] == ["ok", "echo"] for line in lines)
    assert lines[-1].endswith("deployment OK")


def test_validate_fails_where_nothing_listens() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, ["validate", "--url", url])
    assert result.exit_code == EXIT_UNAVAILABLE
    assert "FAIL  api" in result.output
    assert "nothing answers" in result.output
    assert result.output.rstrip().endswith("deployment NOT OK")
