"""The Prometheus alert rules are valid and behave: ``promtool check rules`` and ``promtool
test rules`` (Debian's ``prometheus`` package, installed by scripts/setup.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from workers_core.observability import metrics

INFRA = Path(__file__).resolve().parents[2] / "infra"
RULES = INFRA / "prometheus" / "alerts.yml"
RULE_TESTS = INFRA / "prometheus" / "alerts_test.yml"
DASHBOARD = INFRA / "grafana" / "workers-core.json"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is missing: apt-get install prometheus (scripts/setup.sh does)")
    return found


def test_rules_pass_promtool_check() -> None:
    done = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_each_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    done = subprocess.run([_promtool(), "test", "rules", RULE_TESTS.name], capture_output=True,
                          text=True, timeout=120, cwd=RULE_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test() -> None:
    alerts = {line.split(":", 1)[1].strip() for line in RULES.read_text().splitlines()
              if line.strip().startswith("- alert:")}
    tested = {line.split(":", 1)[1].strip() for line in RULE_TESTS.read_text().splitlines()
              if line.strip().startswith("alertname:")}
    assert alerts and alerts <= tested, alerts - tested


def test_dashboard_queries_only_metrics_the_platform_exports() -> None:
    """A renamed metric must not leave a dashboard panel silently empty."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    known = {m.exported_name for m in metrics.METRICS}
    for expr in exprs:
        used = {w for w in _words(expr) if w.startswith("ray_workers_")}
        for name in used:
            base = name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
            assert name in known or base in known, f"{name} in {expr!r}"


def _words(expr: str) -> list[str]:
    return "".join(c if c.isalnum() or c in "_:" else " " for c in expr).split()


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each panel query, with Grafana's variables filled in, passes ``promtool check rules``."""
    promtool = _promtool()
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    filled = [e.replace("$__rate_interval", "5m").replace("$__range", "1h")
              .replace("$queue", ".*") for e in exprs]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(filled)]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
