"""workers_core.deploy_check: verdicts on registry answers and the report's shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from workers_core.deploy_check import (
    Check,
    Outcome,
    Report,
    external_check,
    parse_workers,
    validate_deployment,
    worker_check,
)
from workers_core.registry.models import HealthDetail, WorkerMetrics, WorkerRecord, WorkerStatus

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _worker(tag: str, status: WorkerStatus = WorkerStatus.IDLE, ok: bool = True,
            checks: dict[str, str] | None = None) -> WorkerRecord:
    return WorkerRecord(
        tag=tag, replica_id=f"{tag}#1", node="n1", version="0.1.0", status=status, since=NOW,
        registered_at=NOW, last_seen=NOW, interval_s=30, health_endpoint=None,
        health_score=100 if ok else 0, metrics=WorkerMetrics(),
        health=HealthDetail(ok=ok, checks=checks or {}))


def test_summaries_and_bare_records_are_both_read() -> None:
    summary = {"tag": "ocr", "health_score": 100, "counts": {"idle": 1},
               "workers": [_worker("ocr").model_dump(mode="json")]}
    by_tag = parse_workers([summary, _worker("debug").model_dump(mode="json")])
    assert sorted(by_tag) == ["debug", "ocr"]
    assert parse_workers({"tags": [summary]})["ocr"][0].replica_id == "ocr#1"


def test_a_queue_without_a_healthy_worker_fails() -> None:
    check = worker_check("ocr", [_worker("ocr", WorkerStatus.MISSING),
                                 _worker("ocr", ok=False)])
    assert check.outcome is Outcome.FAIL and "missing" in check.detail
    assert worker_check("pdf.render", []).detail == "no healthy worker (none registered)"
    assert worker_check("ocr", [_worker("ocr")]).outcome is Outcome.OK


def test_outside_services_fail_by_the_check_that_failed() -> None:
    by_tag = {"notify.slack": [_worker("notify.slack", checks={
        "notify.slack.slack_api": "error: invalid_auth", "notify.slack.webhook": "ok"})]}
    check = external_check(by_tag)
    assert check.outcome is Outcome.FAIL
    assert check.detail == "notify.slack/notify.slack.slack_api: error: invalid_auth"
    assert external_check({"debug": [_worker("debug")]}).outcome is Outcome.SKIP


def test_report_is_not_ok_with_any_fail_and_says_so_last() -> None:
    report = Report(url="http://x", checks=[Check(name="api", outcome=Outcome.OK),
                                            Check(name="echo", outcome=Outcome.FAIL, detail="d")])
    assert not report.ok and not report.api_unreachable
    assert report.text().splitlines()[-1] == "1 ok, 1 FAIL: deployment NOT OK"
    assert report.model_dump()["ok"] is False


def _platform_without_registry(request: httpx.Request) -> httpx.Response:
    """A stand-in deployment (an outside HTTP service to the validator)."""
    routes: dict[str, Any] = {
        "/healthz": {"status": "ok"},
        "/readyz": {"status": "ready", "checks": {"redis": "ok", "pool:debug": "ok"}},
        "/v1/queues": [{"queue": "debug", "replicas": 1, "length": 0, "lag": 0,
                        "dead_lettered": 0}],
        "/v1/tasks": [{"name": "debug.echo", "queue": "debug"}],
    }
    if request.url.path == "/v1/jobs":
        return httpx.Response(202, json={"id": "j1"})
    if request.url.path == "/v1/jobs/j1":
        return httpx.Response(200, json={"status": "succeeded", "result": {
            "message": request.headers.get("x-nonce", "")}})
    if request.url.path in routes:
        return httpx.Response(200, json=routes[request.url.path])
    return httpx.Response(404, json={"title": "not found"})


def test_a_missing_registry_is_a_warning_and_a_wrong_echo_a_failure() -> None:
    report = validate_deployment("http://platform", transport=httpx.MockTransport(
        _platform_without_registry))
    outcomes = {c.name: c.outcome for c in report.checks}
    assert outcomes["workers"] is Outcome.WARN
    assert outcomes["external"] is Outcome.SKIP
    assert outcomes["pool debug"] is outcomes["queue debug"] is Outcome.OK
    # The stand-in echoes an empty message, not the nonce: the round trip is judged.
    assert outcomes["echo"] is Outcome.FAIL
    assert not report.ok
