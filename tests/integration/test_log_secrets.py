"""Secrets that jobs and requests carry never reach a log line the platform writes."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import ray

from tests.integration.conftest import Platform

pytestmark = pytest.mark.slow


def platform_log_files() -> list[Path]:
    """Every file under this Ray session's log directory: the gateway's and the pools'
    stderr (worker-*.err/out), Serve's replica and proxy logs, Ray's own logs."""
    # No public API names the session directory; the node object knows it.
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    return [p for p in logs.rglob("*") if p.is_file()]


def platform_log_lines(needle: str) -> list[str]:
    """Lines of the platform's logs that contain ``needle``."""
    found = []
    for path in platform_log_files():
        with path.open(encoding="utf-8", errors="replace") as f:
            found += [line for line in f if needle in line]
    return found


def test_job_secrets_are_redacted_in_every_log_line(platform: Platform) -> None:
    password, bearer, api_key, token = (secrets.token_hex(12) for _ in range(4))
    headers = {"Authorization": f"Bearer {bearer}", "X-Api-Key": api_key}
    # A failure whose message carries secrets: logged with its message and traceback.
    failed = platform.submit("debug.fail", {
        "retryable": False,
        "message": f"login failed password={password} header Authorization: Bearer {bearer} "
                   f"{{'api_key': '{api_key}'}} xoxb-{token}",
    }, headers=headers)
    # Secrets in payload fields (a retried job is logged on each attempt).
    retried = platform.submit("debug.fail", {
        "times": 1, "message": f"token={token} then ok"}, headers=headers)
    echoed = platform.submit("debug.echo", {
        "message": "hello", "data": {"password": password, "smtp_password": password,
                                     "headers": {"Authorization": f"Bearer {bearer}"}}},
        headers=headers)
    for job_id, status in ((failed, "failed"), (retried, "succeeded"), (echoed, "succeeded")):
        assert platform.wait_done(job_id)["status"] == status
    # The platform's own secrets (SMTP password, Slack token, ANAF client secret) too.
    own = [s.get_secret_value() for s in (platform.settings.smtp_password,
                                         platform.settings.slack_bot_token,
                                         platform.settings.anaf_client_secret) if s]
    files = platform_log_files()
    assert files, "no log files found"
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in files]
    for secret in (password, bearer, api_key, token, *own):
        leaks = [str(p) for p, text in zip(files, texts, strict=True) if secret in text]
        assert not leaks, f"a secret reached {leaks}"
    # The grep read the right logs: the failed and the retried job were logged, redacted.
    failed_lines = [line for text in texts for line in text.splitlines() if failed in line]
    assert any('"event": "job_failed"' in line for line in failed_lines), failed_lines[:5]
    assert any("[redacted]" in line for line in failed_lines)
    assert any(retried in line and "job_retrying" in line for t in texts for line in t.splitlines())
