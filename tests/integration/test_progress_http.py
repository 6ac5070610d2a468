"""Job progress on GET /v1/jobs/{id}: what ``ctx.report_progress`` recorded, through the
running platform, the SDK and the shell."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from click.testing import CliRunner

from tests.integration.conftest import Platform
from workers_core.cli import main
from workers_core.client import WorkersClient
from workers_core.jobs.models import JobProgress, JobStatus


def wait_for_progress(platform: Platform, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
    """Polls until the job has reported at least one step done."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = platform.job(job_id)
        if job["progress"] and job["progress"]["done"] >= 1:
            return job
        assert time.monotonic() < deadline, f"no progress reported: {job}"
        time.sleep(0.2)


def test_a_running_job_shows_its_last_progress_report(platform: Platform) -> None:
    job_id = platform.submit("debug.sleep", {"seconds": 60, "progress_steps": 60})
    try:
        job = wait_for_progress(platform, job_id)
        progress = job["progress"]
        assert job["status"] == "running"
        assert progress["total"] == 60 and 1 <= progress["done"] < 60
        assert progress["fraction"] == round(progress["done"] / 60, 4)
        assert datetime.fromisoformat(progress["updated_at"]) >= datetime.fromisoformat(
            job["started_at"]
        )
    finally:
        platform.http.post(f"/v1/jobs/{job_id}:cancel")


def test_a_finished_job_keeps_its_last_report_in_the_sdk_and_the_shell(
    platform: Platform,
) -> None:
    job_id = platform.submit("debug.sleep", {"seconds": 0.2, "progress_steps": 4})
    assert platform.wait_done(job_id)["status"] == "succeeded"
    with WorkersClient(platform.url) as wc:
        job = wc.get(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert isinstance(job.progress, JobProgress)
    assert (job.progress.done, job.progress.total, job.progress.fraction) == (4, 4, 1.0)

    result = CliRunner().invoke(main, ["--url", platform.url, "get", job_id])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["progress"]
    assert (shown["done"], shown["total"], shown["fraction"]) == (4, 4, 1.0)


def test_a_job_that_never_reports_has_null_progress(platform: Platform) -> None:
    job = platform.wait_done(platform.submit("debug.echo", {"message": "no progress"}))
    assert job["status"] == "succeeded"
    assert "progress" in job and job["progress"] is None


def test_the_openapi_document_describes_progress(platform: Platform) -> None:
    schemas = platform.http.get("/openapi.json").json()["components"]["schemas"]
    assert "progress" in schemas["Job"]["properties"]
    assert {"done", "total", "updated_at", "fraction"} <= set(schemas["JobProgress"]["properties"])
