"""What a listener says it wants (filters, subscriptions) and what it is told back."""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, field_validator

EventType = Annotated[str, Field(pattern=r"^[a-z0-9_.-]{1,100}$")]
SECRET_PREFIX = "whsec_"


class EventFilter(BaseModel):
    """Which lifecycle events a listener gets; every field set must match (empty: all)."""

    types: list[EventType] = Field(default_factory=list, max_length=50,
                                   description="CloudEvent types, e.g. job.succeeded.")
    task: str | None = Field(default=None, max_length=200)
    queue: str | None = Field(default=None, max_length=200)
    correlation_id: str | None = Field(default=None, max_length=255)
    job_id: str | None = Field(default=None, max_length=64)

    def matches(self, event: dict[str, Any]) -> bool:
        if self.types and event.get("type") not in self.types:
            return False
        data = event.get("data") or {}
        wanted = (("task", self.task), ("queue", self.queue),
                  ("correlation_id", self.correlation_id), ("job_id", self.job_id))
        return all(value is None or data.get(key) == value for key, value in wanted)


def check_secret(secret: str) -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 to 64 random bytes."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX!r} (Standard Webhooks)")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except binascii.Error:
        raise ValueError("must be base64 after the prefix") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("must hold 24 to 64 bytes")
    return secret


class WebhookSpec(BaseModel):
    """``POST /v1/webhooks``: where to send which events, and the signing secret."""

    url: str = Field(max_length=2048)
    filter: EventFilter = Field(default_factory=EventFilter)
    secret: SecretStr | None = Field(
        default=None, description="whsec_<base64>; omitted: one is generated and returned once.")
    description: str = Field(default="", max_length=500)

    @field_validator("secret")
    @classmethod
    def _secret_format(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            check_secret(v.get_secret_value())
        return v


class WebhookStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"  # the receiver answered 410 Gone


class Webhook(BaseModel):
    """A subscription as the API shows it: never with its secret."""

    id: str
    url: str
    filter: EventFilter
    description: str
    status: WebhookStatus
    disabled_reason: str | None = None
    created_at: float


class WebhookCreated(Webhook):
    """The answer to a registration: the only time the secret is shown."""

    secret: str


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRYING = "retrying"
    DEAD = "dead"


class DeliveryAttempt(BaseModel):
    """One POST to a receiver, as ``GET /v1/webhooks/{id}/deliveries`` lists it."""

    message_id: str
    event_id: str
    event_type: str
    attempt: int
    at: float
    outcome: DeliveryOutcome
    status_code: int | None = None
    error: str | None = None
    duration_ms: float
    next_attempt_at: float | None = None


class DeadLetter(BaseModel):
    """An event that could not be delivered: its last error, kept for redelivery."""

    message_id: str
    event: dict[str, Any]
    attempts: int
    last_error: str
    dead_at: float


class Redelivered(BaseModel):
    redelivered: int
