"""Registry errors, in the platform's hierarchy (HTTP status and problem type)."""

from __future__ import annotations

from workers_core.errors import WorkersError


class RegistryUnavailable(WorkersError):
    """503: the registry actor did not answer (in time)."""

    status_code = 503
    problem_type = "registry-unavailable"


class UnknownWorkerTag(WorkersError):
    """404: the registry knows no worker with this tag."""

    status_code = 404
    problem_type = "unknown-worker-tag"
    retryable = False
