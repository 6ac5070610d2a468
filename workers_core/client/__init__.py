"""The Python SDK: ``WorkersClient`` (blocking) and ``AsyncWorkersClient`` (asyncio).

Both send the same requests (``ops``), retry the same way (429/503 always: nothing was
stored; transport errors when resending cannot act twice; submissions carry an
Idempotency-Key so they always can), share a circuit breaker design and raise the same
typed errors (``workers_core.client.errors``).
"""

from workers_core.breaker import CircuitBreaker
from workers_core.client.aio import AsyncWorkersClient
from workers_core.client.core import RetryConfig
from workers_core.client.errors import (
    APIError,
    CircuitOpen,
    ClientError,
    Conflict,
    InvalidRequest,
    JobFailed,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    ServerError,
    TransportError,
    Unavailable,
    WaitTimeout,
)
from workers_core.client.sync import WorkersClient

__all__ = [
    "APIError", "AsyncWorkersClient", "CircuitBreaker", "CircuitOpen", "ClientError",
    "Conflict", "InvalidRequest", "JobFailed", "NotFound", "Overloaded", "PayloadTooLarge",
    "RetryConfig", "ServerError", "TransportError", "Unavailable", "WaitTimeout",
    "WorkersClient",
]
