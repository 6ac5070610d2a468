import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from workers_core.config import QueueOverrides, Settings

ENV_EXAMPLE = Path(__file__).parents[2] / ".env.example"


def test_env_example_lists_every_setting() -> None:
    listed = set(re.findall(r"^#?\s*WORKERS_([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M))
    assert listed == {name.upper() for name in Settings.model_fields}


def test_queue_overrides_come_from_json_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORKERS_QUEUES", '{"ocr": {"num_gpus": 0.25, "replicas": 4}}')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.overrides_for("ocr") == QueueOverrides(num_gpus=0.25, replicas=4)


def test_ray_rejects_fractions_above_one() -> None:
    with pytest.raises(ValidationError, match="whole numbers"):
        QueueOverrides(num_cpus=1.5)


def test_the_redis_password_is_not_shown() -> None:
    settings = Settings(_env_file=None, redis_password="hunter2")  # type: ignore[call-arg]
    assert "hunter2" not in repr(settings)
    assert settings.redis_kwargs()["password"] == "hunter2"
