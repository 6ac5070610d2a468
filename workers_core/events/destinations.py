"""Where a webhook may be sent: the pdf.render network rules (netguard) with webhook knobs.

Checked at registration and again before every delivery, because DNS answers change; the
POST then goes to the very address that was checked (``Target.pinned_url``).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

from workers_core.config import Settings
from workers_core.integrations.netguard import (
    BlockedUrl,
    IPAddress,
    Resolver,
    Target,
    describe_ip,
    is_loopback_host,
    is_public_ip,
    normalize_host,
    resolve_addresses,
    system_resolver,
    unwrap_mapped,
)

_CGNAT: Final = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598, not "private" to Python


def _is_private_range(ip: IPAddress) -> bool:
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return False
    return ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT)


class DestinationPolicy:
    """Allowlisted hosts; public addresses, plus loopback / private ranges when allowed."""

    def __init__(self, allowed_hosts: Iterable[str], *, allow_loopback: bool = False,
                 allow_private: bool = False, allow_http: bool = False,
                 resolver: Resolver = system_resolver) -> None:
        hosts = [h.strip().lower() for h in allowed_hosts if h.strip()]
        self.any_host = "*" in hosts
        self.suffixes = tuple("." + normalize_host(h[2:]) for h in hosts if h.startswith("*."))
        self.exact = frozenset(normalize_host(h) for h in hosts if not h.startswith("*"))
        self.allow_loopback = allow_loopback
        self.allow_private = allow_private
        self.allow_http = allow_http
        self.resolver = resolver

    @classmethod
    def from_settings(cls, settings: Settings) -> DestinationPolicy:
        return cls(settings.webhook_allowed_hosts, allow_loopback=settings.webhook_allow_loopback,
                   allow_private=settings.webhook_allow_private,
                   allow_http=settings.webhook_allow_http)

    def _host_allowed(self, host: str) -> bool:
        return self.any_host or host in self.exact or host.endswith(self.suffixes)

    def refusal(self, ip: IPAddress) -> str | None:
        """Why this address is refused, or None."""
        ip = unwrap_mapped(ip)
        if is_public_ip(ip):
            return None
        if ip.is_loopback:
            return None if self.allow_loopback else "loopback (WORKERS_WEBHOOK_ALLOW_LOOPBACK)"
        if _is_private_range(ip):
            return None if self.allow_private else "private (WORKERS_WEBHOOK_ALLOW_PRIVATE)"
        return describe_ip(ip)

    def check_syntax(self, url: str) -> tuple[str, str, int]:
        """Scheme, credentials and allowlist: (scheme, host, port), no DNS."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise BlockedUrl(f"malformed URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise BlockedUrl("a webhook URL must be https (or http where allowed)")
        if parts.username is not None or parts.password is not None:
            raise BlockedUrl("URLs with credentials are refused: use the signature instead")
        if not parts.hostname:
            raise BlockedUrl("the URL has no host")
        host = normalize_host(parts.hostname)
        with contextlib.suppress(ValueError):  # an address literal: its class says more
            reason = self.refusal(ipaddress.ip_address(host))
            if reason is not None:
                raise BlockedUrl(f"{host} is a {reason} address", host=host)
        if not self._host_allowed(host):
            raise BlockedUrl(f"host {host!r} is not in WORKERS_WEBHOOK_ALLOWED_HOSTS", host=host)
        if scheme == "http" and not self.allow_http and not (
                self.allow_loopback and is_loopback_host(host)):
            raise BlockedUrl("plain http is refused (https, or WORKERS_WEBHOOK_ALLOW_HTTP)")
        return scheme, host, port or (443 if scheme == "https" else 80)

    async def check(self, url: str) -> Target:
        """Resolve and check every address; the first is the one to connect to."""
        scheme, host, port = self.check_syntax(url)
        addresses = await resolve_addresses(host, port, self.resolver)
        for ip in addresses:  # one bad answer is enough: DNS may rotate between answers
            reason = self.refusal(ip)
            if reason is not None:
                raise BlockedUrl(f"host {host!r} resolves to {ip}, a {reason} address",
                                 host=host)
        return Target(url=url, scheme=scheme, host=host, port=port, ip=addresses[0])
