"""Recurring jobs through the running platform: the gateway's scheduler loop fires a
per-second cron, each job runs to success, no tick makes two jobs; SDK and CLI on top."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from click.testing import CliRunner

from tests.integration.conftest import Platform
from tests.waiting import eventually
from workers_core.cli import main
from workers_core.client import WorkersClient

pytestmark = pytest.mark.slow


def test_a_per_second_cron_makes_jobs_that_succeed_one_per_tick(platform: Platform) -> None:
    sid = f"every-second-{uuid.uuid4().hex[:6]}"
    resp = platform.http.post("/v1/schedules", json={
        "id": sid, "cron": "* * * * * *", "timezone": "UTC", "task": "debug.echo",
        "payload": {"message": "tick"}})
    assert resp.status_code == 201, resp.text

    def fired() -> list[dict[str, Any]]:
        detail = platform.http.get(f"/v1/schedules/{sid}").json()
        with_jobs = [f for f in detail["recent_fires"] if f["job_id"]]
        return with_jobs[:3] if len(with_jobs) >= 3 else []

    fires = eventually(fired, "three fires with their jobs")
    assert platform.http.delete(f"/v1/schedules/{sid}").status_code == 204
    for fire in fires:
        job = platform.wait_done(fire["job_id"])
        assert job["status"] == "succeeded"
        assert job["result"]["message"] == "tick"
        assert job["idempotency_key"].startswith(f"schedule:{sid}:")
    keys = [j["idempotency_key"] for j in platform.http.get(
        "/v1/jobs", params={"task": "debug.echo", "limit": 500}).json()["items"]
        if (j["idempotency_key"] or "").startswith(f"schedule:{sid}:")]
    assert len(keys) == len(set(keys)) >= 3


def test_sdk_trigger_of_a_paused_schedule_runs_one_job(platform: Platform) -> None:
    sid = f"monthly-{uuid.uuid4().hex[:6]}"
    with WorkersClient(platform.url) as wc:
        schedule = wc.put_schedule(sid, "0 2 1 * *", "debug.echo", {"message": "now"},
                                   replace=True, paused=True)
        assert schedule.status == "paused" and schedule.timezone == "Europe/Bucharest"
        accepted = wc.trigger_schedule(sid, idempotency_key="once")
        assert wc.trigger_schedule(sid, idempotency_key="once").id == accepted.id
        assert wc.wait(accepted.id, timeout=60).result["message"] == "now"
        detail = wc.get_schedule(sid)
        assert [f.kind for f in detail.recent_fires] == ["manual"]
        assert detail.last_job_id == accepted.id
        assert wc.resume_schedule(sid).next_fire_at is not None
        assert sid in [s.id for s in wc.schedules()]
        wc.delete_schedule(sid)


def test_cli_adds_lists_and_removes_a_schedule(platform: Platform) -> None:
    sid = f"cli-{uuid.uuid4().hex[:6]}"
    runner = CliRunner()
    base = ["--url", platform.url, "schedules"]
    added = runner.invoke(main, [*base, "add", sid, "@daily", "debug.echo",
                                 "--json", '{"message": "x"}', "--timezone", "UTC"])
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["cron"] == "0 0 * * *"
    bad = runner.invoke(main, [*base, "add", f"{sid}-bad", "0 25 * * *", "debug.echo"])
    assert bad.exit_code == 2 and "cron" in bad.output
    listed = runner.invoke(main, [*base, "list"])
    assert sid in listed.output
    assert runner.invoke(main, [*base, "rm", sid]).exit_code == 0
    assert runner.invoke(main, [*base, "get", sid]).exit_code == 6
