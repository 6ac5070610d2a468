"""workers-core: durable jobs on Ray actor pools, over HTTP.

The public namespace: what task authors and SDK users import.
"""

__version__ = "0.1.0"

from workers_core.config import QueueOverrides, Settings
from workers_core.errors import (
    IdempotencyConflict,
    InvalidPayload,
    JobNotFound,
    JobStateConflict,
    NonRetryable,
    PayloadTooLarge,
    Retry,
    StoreUnavailable,
    TimeLimitExceeded,
    UnknownTask,
    WorkersError,
)
from workers_core.jobs.models import Job, JobAccepted, JobError, JobStatus, QueueStats
from workers_core.jobs.retry import RetryPolicy
from workers_core.tasks.base import Health, JobContext, Resources, Task

__all__ = [
    "Health",
    "IdempotencyConflict",
    "InvalidPayload",
    "Job",
    "JobAccepted",
    "JobContext",
    "JobError",
    "JobNotFound",
    "JobStateConflict",
    "JobStatus",
    "NonRetryable",
    "PayloadTooLarge",
    "QueueOverrides",
    "QueueStats",
    "Resources",
    "Retry",
    "RetryPolicy",
    "Settings",
    "StoreUnavailable",
    "Task",
    "TimeLimitExceeded",
    "UnknownTask",
    "WorkersError",
    "__version__",
]
