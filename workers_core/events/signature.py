"""Standard Webhooks signatures (https://www.standardwebhooks.com/): what receivers verify.

The signed content is ``<webhook-id>.<webhook-timestamp>.<body>``; the key is the secret's
base64 part after ``whsec_``; ``webhook-signature`` is ``v1,<base64 HMAC-SHA256>``. Receivers
use any Standard Webhooks library (``standardwebhooks``, ``svix``), or the four lines of
``sign`` below, and reject timestamps more than a few minutes off their clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from workers_core.events.models import SECRET_PREFIX


def new_secret() -> str:
    """A fresh ``whsec_`` secret: 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one attempt."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers a Standard Webhooks receiver checks."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }
