"""The operations page in real headless Chromium (Debian's, through Playwright) against the
whole platform: it loads clean, follows the event stream, retries a dead letter and drains a
pool. A screenshot is kept under test-artifacts/ops.png."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.integration.conftest import Platform
from workers_core.cli import main
from workers_core.integrations.chromium import find_chromium, launch_args

pytest.importorskip("playwright")
from playwright.sync_api import ConsoleMessage, Page, expect, sync_playwright

pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LIVE_TIMEOUT_MS = 30_000


@dataclass
class OpsPage:
    page: Page
    problems: list[str] = field(default_factory=list)  # console errors, page errors

    def row(self, job_id: str) -> Any:
        return self.page.locator(f'#jobs tr[data-job-id="{job_id}"]')


@pytest.fixture(scope="module")
def ops(platform: Platform) -> Iterator[OpsPage]:
    # The browser must reach the gateway on loopback: drop the no-network host mapping
    # pdf.render uses; the rest of its flags (no GPU, small /dev/shm) apply here too.
    args = [a for a in launch_args() if not a.startswith("--host-resolver-rules")]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(find_chromium()), args=args,
                                     headless=True, chromium_sandbox=os.geteuid() != 0)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        ops = OpsPage(page)
        page.on("console", lambda m: _note(ops, m))
        page.on("pageerror", lambda e: ops.problems.append(f"pageerror: {e}"))
        page.goto(f"{platform.url}/ops")
        expect(page.locator("#conn")).to_have_attribute("data-state", "live",
                                                        timeout=LIVE_TIMEOUT_MS)
        yield ops
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "ops.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"\nops page screenshot: {shot}")
        browser.close()


def _note(ops: OpsPage, message: ConsoleMessage) -> None:
    if message.type == "error":
        ops.problems.append(f"console: {message.text}")


def queue(platform: Platform, name: str) -> dict[str, Any]:
    found = {q["queue"]: q for q in platform.http.get("/v1/queues").json()}
    return dict(found[name])


def wait_consumers_polled_after(platform: Platform, queue_name: str, after: float,
                                timeout_s: float = 30) -> None:
    """Every live replica of the queue has begun a step after ``after`` (its heartbeat)."""
    key = f"{platform.settings.redis_prefix}:consumers:{queue_name}"
    deadline = time.monotonic() + timeout_s
    while True:
        scores = [s for _, s in platform.redis.zrange(key, 0, -1, withscores=True)
                  if s > after - 10]
        if scores and min(scores) > after:
            return
        assert time.monotonic() < deadline, f"replicas of {queue_name} stopped polling"
        time.sleep(0.05)


def test_the_page_loads_with_the_queues_workers_and_no_console_errors(
    ops: OpsPage, platform: Platform,
) -> None:
    page = ops.page
    expect(page.locator('#queues tr[data-queue="debug"]')).to_be_visible()
    expect(page.locator("#workers .tag").first).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(page.locator('#filter-task option[value="debug.echo"]')).to_have_count(1)
    assert ops.problems == []


def test_a_job_submitted_over_http_appears_live_without_a_reload(
    ops: OpsPage, platform: Platform,
) -> None:
    ops.page.evaluate("window.__sameDocument = true")
    job_id = platform.submit("debug.echo", {"message": "<img src=x onerror=alert(1)>"})
    row = ops.row(job_id)
    expect(row).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(row).to_have_attribute("data-status", "succeeded", timeout=LIVE_TIMEOUT_MS)
    assert ops.page.evaluate("window.__sameDocument") is True  # no reload happened
    assert ops.problems == []


def test_a_dead_letter_is_retried_from_the_page_and_succeeds(
    ops: OpsPage, platform: Platform,
) -> None:
    dlq_before = queue(platform, "debug")["dead_lettered"]
    job_id = platform.submit("debug.fail", {"times": 1, "message": "<b>not bold</b>"},
                             max_attempts=1)
    assert platform.wait_done(job_id)["status"] == "dead"
    assert queue(platform, "debug")["dead_lettered"] > dlq_before
    row = ops.row(job_id)
    expect(row).to_have_attribute("data-status", "dead", timeout=LIVE_TIMEOUT_MS)
    # The error is user data: shown as text, never parsed as markup.
    expect(row.locator("td.error")).to_contain_text("<b>not bold</b>",
                                                    timeout=LIVE_TIMEOUT_MS)
    assert row.locator("td.error b").count() == 0
    row.get_by_role("button", name="Retry").click()
    expect(row).to_have_attribute("data-status", "succeeded", timeout=LIVE_TIMEOUT_MS)
    job = platform.job(job_id)
    assert job["status"] == "succeeded"
    assert job["result"] == {"succeeded_on_attempt": 2}
    assert ops.problems == []


def test_drain_and_resume_from_the_page_hold_and_release_the_queue(
    ops: OpsPage, platform: Platform,
) -> None:
    queue_row = ops.page.locator('#queues tr[data-queue="debug"]')
    try:
        queue_row.get_by_role("button", name="Drain").click()
        expect(queue_row).to_have_attribute("data-draining", "true")
        assert queue(platform, "debug")["draining"] is True
        # Only a step that began after the flag was in Redis is sure to have seen it: a
        # replica may begin one between the click and the write, and then block on a read.
        wait_consumers_polled_after(platform, "debug", time.time())
        job_id = platform.submit("debug.echo", {"message": "held"})
        # Two read blocks later every replica has finished a step after the submission.
        wait_consumers_polled_after(platform, "debug",
                                    time.time() + 2 * platform.settings.read_block_ms / 1000)
        assert platform.job(job_id)["status"] == "queued"
        queue_row.get_by_role("button", name="Resume").click()
        expect(queue_row).to_have_attribute("data-draining", "false")
        assert queue(platform, "debug")["draining"] is False
        assert platform.wait_done(job_id)["status"] == "succeeded"
        expect(ops.row(job_id)).to_have_attribute("data-status", "succeeded",
                                                  timeout=LIVE_TIMEOUT_MS)
    finally:
        platform.http.post("/v1/queues/debug:resume")  # never leave the shared pool held
    assert ops.problems == []


def test_the_cli_drains_resumes_and_is_refused_scaling_a_fixed_pool(platform: Platform) -> None:
    cli = CliRunner()
    base = ["--url", platform.url, "queues"]
    try:
        drained = cli.invoke(main, [*base, "drain", "debug"])
        assert drained.exit_code == 0 and "debug: draining" in drained.output
        assert queue(platform, "debug")["draining"] is True
    finally:
        resumed = cli.invoke(main, [*base, "resume", "debug"])
    assert resumed.exit_code == 0 and "debug: taking jobs" in resumed.output
    scaled = cli.invoke(main, [*base, "scale", "debug", "3"])  # the tests' debug pool: fixed 2
    assert scaled.exit_code != 0 and "fixed replica count (2)" in scaled.output
    assert queue(platform, "debug")["operator_target"] is None
