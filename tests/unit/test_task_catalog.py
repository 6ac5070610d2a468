import pytest

from workers_core.config import QueueOverrides, Settings
from workers_core.errors import UnknownTask
from workers_core.tasks.registry import TaskCatalog


def test_builtin_debug_tasks_are_discovered_through_entry_points() -> None:
    catalog = TaskCatalog.discover()
    assert {"debug.echo", "debug.sleep", "debug.fail"} <= set(catalog.names())
    assert "debug" in catalog.queues()


def test_unknown_task_names_the_known_ones() -> None:
    with pytest.raises(UnknownTask) as err:
        TaskCatalog.discover().get("nope")
    assert "debug.echo" in err.value.message and err.value.status_code == 404


def test_settings_override_what_a_task_declares() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        queues={"debug": QueueOverrides(num_cpus=0.5, num_gpus=0.25, replicas=3,
                                        concurrency=2)},
    )
    spec = TaskCatalog.discover().queue_spec("debug", settings)
    assert (spec.resources.num_cpus, spec.resources.num_gpus) == (0.5, 0.25)
    assert (spec.replicas, spec.concurrency) == (3, 2)


def test_declared_resources_apply_without_overrides() -> None:
    spec = TaskCatalog.discover().queue_spec("debug", Settings(_env_file=None))  # type: ignore[call-arg]
    assert spec.resources.num_cpus == 0.1 and spec.replicas == 1
