"""The Python SDK and the shell CLI against the running platform."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.integration.conftest import Platform
from workers_core.cli import (
    EXIT_JOB_FAILED,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    EXIT_WAIT_TIMEOUT,
    main,
)
from workers_core.client import (
    AsyncWorkersClient,
    InvalidRequest,
    JobFailed,
    NotFound,
    RetryConfig,
    TransportError,
    WaitTimeout,
    WorkersClient,
)
from workers_core.jobs.models import JobStatus


@pytest.fixture
def wc(platform: Platform) -> WorkersClient:
    with WorkersClient(platform.url) as client:
        yield client  # type: ignore[misc]


def test_submit_wait_and_result(wc: WorkersClient) -> None:
    accepted = wc.submit("debug.echo", {"data": {"ș": "ț"}}, correlation_id="sdk-1")
    job = wc.wait(accepted.id, timeout=30)
    assert job.status is JobStatus.SUCCEEDED and job.result["data"] == {"ș": "ț"}
    assert job.correlation_id == "sdk-1"
    assert wc.run("debug.echo", {"message": "7"}, timeout=30)["message"] == "7"


def test_idempotency_key_returns_the_same_job(wc: WorkersClient) -> None:
    first = wc.submit("debug.echo", {"message": "1"}, idempotency_key="sdk-same-key")
    again = wc.submit("debug.echo", {"message": "1"}, idempotency_key="sdk-same-key")
    assert again.id == first.id and again.duplicate


def test_submit_many_in_chunks(wc: WorkersClient) -> None:
    wc.core.batch_size = 40  # several requests for one call
    accepted = wc.submit_many({"task": "debug.echo", "payload": {"message": str(i)}}
                              for i in range(100))
    assert len({a.id for a in accepted}) == 100
    results = [wc.wait(a.id, timeout=60).result["message"] for a in accepted[::10]]
    assert results == [str(i) for i in range(0, 100, 10)]


def test_typed_errors(wc: WorkersClient) -> None:
    with pytest.raises(InvalidRequest) as invalid:
        wc.submit("debug.sleep", {"seconds": "long"})
    assert any(e["field"].startswith("payload.seconds") for e in invalid.value.errors)
    with pytest.raises(NotFound):
        wc.get("0" * 32)
    with pytest.raises(JobFailed) as failed:
        wc.run("debug.fail", {"times": 5}, max_attempts=1, timeout=30)
    assert failed.value.job.status in (JobStatus.FAILED, JobStatus.DEAD)
    slow = wc.submit("debug.sleep", {"seconds": 5})
    with pytest.raises(WaitTimeout):
        wc.wait(slow.id, timeout=0.5)
    wc.cancel(slow.id)


def test_jobs_listing_and_queues(wc: WorkersClient) -> None:
    ids = {wc.submit("debug.echo", {"message": str(i)}, correlation_id="list").id for i in range(3)}
    listed = {j.id for j in wc.jobs(task="debug.echo", limit=200, page_size=2)}
    assert ids <= listed
    assert "debug" in {q.queue for q in wc.queues()}
    assert "debug.echo" in {t["name"] for t in wc.tasks()}
    assert wc.ready()["status"] == "ready"


def test_artifacts_roundtrip(wc: WorkersClient, tmp_path: Path) -> None:
    path = tmp_path / "factura.txt"
    path.write_bytes("Factură".encode())
    meta = wc.upload(path, "text/plain")
    assert meta.filename == "factura.txt" and meta.size == path.stat().st_size
    assert wc.download(meta.id) == path.read_bytes()


def test_unreachable_platform_is_a_transport_error() -> None:
    retry = RetryConfig(max_retries=1, backoff_base_s=0.01)
    with WorkersClient("http://127.0.0.1:9", retry=retry) as wc, \
            pytest.raises(TransportError) as exc:
        wc.get("x")
    assert not exc.value.sent


async def test_async_client(platform: Platform) -> None:
    async with AsyncWorkersClient(platform.url) as wc:
        accepted = await wc.submit_many([{"task": "debug.echo", "payload": {"message": str(i)}}
                                         for i in range(5)])
        jobs = [await wc.wait(a.id, timeout=30) for a in accepted]
        assert [j.result["message"] for j in jobs] == [str(i) for i in range(5)]
        assert [j.id async for j in wc.jobs(task="debug.echo", limit=3)]


def cli(platform: Platform, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--url", platform.url, *args])
    return result.exit_code, result.output


def test_cli_submit_wait_and_exit_codes(platform: Platform) -> None:
    code, out = cli(platform, "submit", "debug.echo", "--json", '{"message": "Brașov"}', "--wait")
    assert code == 0, out
    assert json.loads(out)["result"]["message"] == "Brașov"

    code, out = cli(platform, "submit", "debug.fail", "--json", '{"times": 9}',
                    "--max-attempts", "1", "--wait")
    assert code == EXIT_JOB_FAILED, out

    code, out = cli(platform, "submit", "debug.sleep", "--json", '{"seconds": 3}', "--wait",
                    "--wait-timeout", "0.5")
    assert code == EXIT_WAIT_TIMEOUT, out

    code, out = cli(platform, "submit", "debug.sleep", "--json", '{"seconds": "x"}')
    assert code == EXIT_USAGE and "payload.seconds" in out

    code, out = cli(platform, "get", "f" * 32)
    assert code == EXIT_NOT_FOUND


def test_cli_lists_jobs_queues_tasks(platform: Platform) -> None:
    code, out = cli(platform, "submit", "debug.echo", "--json", "{}")
    job_id = json.loads(out)["id"]
    code, out = cli(platform, "jobs", "--task", "debug.echo", "--limit", "5")
    assert code == 0 and out.startswith("ID") and "debug.echo" in out
    code, out = cli(platform, "queues")
    assert code == 0 and "debug" in out and "PENDING" in out
    code, out = cli(platform, "tasks")
    assert code == 0 and "debug.echo" in out
    code, out = cli(platform, "get", job_id, "--wait", "10")
    assert code == 0 and json.loads(out)["status"] == "succeeded"


def test_cli_artifact_upload_and_submit_with_file(platform: Platform, tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    path.write_text("salut")
    code, out = cli(platform, "submit", "debug.echo", "--artifact", "message=" + str(path),
                    "--wait")
    assert code == 0, out
    artifact_id = json.loads(out)["result"]["message"]
    target = tmp_path / "back.txt"
    code, out = cli(platform, "download", artifact_id, "-o", str(target))
    assert code == 0 and target.read_text() == "salut"


def test_cli_unreachable() -> None:
    result = CliRunner().invoke(main, ["--url", "http://127.0.0.1:9", "--timeout", "1", "queues"])
    assert result.exit_code == EXIT_UNAVAILABLE


def test_cli_submits_each_document_worker(platform: Platform, tmp_path: Path) -> None:
    """`workers-core submit` for every worker type, files uploaded with --artifact."""
    from tests.unit import ocr_pages

    scan = tmp_path / "scan.png"
    scan.write_bytes(ocr_pages.png(ocr_pages.render(ocr_pages.short_page("Factură 42"))))
    runs = {
        "pdf.render": ["--json", '{"html": "<h1>Factură</h1>"}'],
        "ocr.extract": ["--artifact", f"artifact_id={scan}"],
        "email.send": ["--json", '{"to": ["ana@firma.ro"], "subject": "Salut", "text": "x"}'],
        "notify.slack": ["--json", '{"text": "Salut din CLI"}'],
        "taxpayer.validate": ["--json", '{"cuis": ["123"]}'],  # check digit fails: no call
    }
    for task, args in runs.items():
        code, out = cli(platform, "submit", task, *args, "--wait", "--wait-timeout", "120")
        assert code == 0, (task, out)
        result = json.loads(out)["result"]
        assert result, task
    assert "Factur" in result_of(platform, "ocr.extract")


def result_of(platform: Platform, task: str) -> str:
    code, out = cli(platform, "jobs", "--task", task, "--limit", "1", "--json")
    assert code == 0, out
    return str(json.loads(out.splitlines()[0])["result"]["text"])
