import json

import pytest
import structlog

from workers_core.logs import configure_logging


def test_secrets_never_reach_a_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    structlog.get_logger("t").info(
        "calling",
        password="hunter2",
        headers={"Authorization": "Bearer abc.def.ghi", "Accept": "json"},
        url="redis://user:s3cret@redis:6379/0",
        note="token Bearer zzz.yyy in text",
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    for secret in ("hunter2", "abc.def.ghi", "s3cret", "zzz.yyy"):
        assert secret not in line
    record = json.loads(line)
    assert record["headers"]["Accept"] == "json" and record["event"] == "calling"
