"""Cheap probes for deep health checks: reach a host without spending an API's quota."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from urllib.parse import urlsplit


async def endpoint_reachable(url: str, timeout_s: float = 5.0) -> str:
    """Open a TCP (and, for https, TLS) connection to ``url``'s host and close it; no HTTP
    request is sent, so rate-limited APIs (ANAF: 1 call/s for the lookup) are not charged.
    Returns ``ok (<ms> ms)``; raises ``OSError``/``TimeoutError`` when unreachable."""
    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"no host in {url!r}")
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    started = time.perf_counter()
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(parts.hostname, port,
                                ssl=ssl.create_default_context() if secure else None),
        timeout_s)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return f"ok ({(time.perf_counter() - started) * 1000:.0f} ms)"


async def check_endpoint(url: str, timeout_s: float = 5.0) -> str:
    """``endpoint_reachable`` as a check value: ``ok (...)`` or ``error: ...``."""
    try:
        return await endpoint_reachable(url, timeout_s)
    except (OSError, TimeoutError, ValueError) as exc:
        return f"error: {url} unreachable: {type(exc).__name__}: {exc}"
