"""Small HTTP facts every client here needs the same way."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

# The request surely never reached the server: safe to send again whatever it was.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def retry_after_s(headers: Mapping[str, Any]) -> float | None:
    """A response's ``Retry-After`` in seconds (delta-seconds or an HTTP date, RFC 9110),
    found case-insensitively in any header mapping; ``None`` if absent or unreadable."""
    value: Any = None
    for key, item in headers.items():
        if key.lower() == "retry-after":
            value = item[0] if isinstance(item, list) and item else item
            break
    if value is None or value == "":
        return None
    try:
        return max(float(value), 0.0)
    except (TypeError, ValueError):
        pass
    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(when.tzinfo)).total_seconds(), 0.0)
