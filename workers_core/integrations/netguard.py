"""Outbound URL policy for rendered documents: allowlisted hosts, public IPs only, pinned.

Regex deny-lists failed HTML-to-PDF services again and again (upper-case schemes,
``[::ffff:127.0.0.1]``, redirects, DNS rebinding: Gotenberg CVE-2026-42596/42595). So the
rules here are structural: only ``http``/``https``, only hosts named in
``WORKERS_PDF_ALLOWED_HOSTS`` (exact match), every resolved address must be globally
routable, every redirect hop is checked again, and the connection goes to the very address
that was checked (DNS pinning), with the original host in ``Host`` and TLS SNI.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import SplitResult, urljoin, urlsplit

import httpx

from workers_core.errors import NonRetryable, WorkersError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

SCHEMES: Final = frozenset({"http", "https"})
METHODS: Final = frozenset({"GET", "HEAD"})  # a rendered page never gets to POST anywhere
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
FORWARDED_HEADERS: Final = ("accept", "accept-language", "user-agent")
# Hop-by-hop, or describing the wire form httpx has already decoded.
DROPPED_RESPONSE_HEADERS: Final = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-connection", "te", "trailer",
    "transfer-encoding", "upgrade", "content-encoding", "content-length",
})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class BlockedUrl(NonRetryable):
    """The URL is outside the policy: trying again cannot help."""

    status_code = 422
    problem_type = "url-not-allowed"


class FetchFailed(WorkersError):
    """An allowed URL could not be fetched (network, timeout, too large): may work later."""

    problem_type = "fetch-failed"


def is_public_ip(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses, IPv4 embedded in IPv6 included."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded: ipaddress.IPv4Address | None = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip.teredo is not None:
            embedded = ip.teredo[1]
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not is_public_ip(embedded):
            return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
        or ip.is_multicast or ip.is_unspecified
    )


def is_loopback_host(host: str | None) -> bool:
    """``localhost`` or a loopback literal: where plain-text protocols are tolerated (a local
    relay, a sandbox). Names are not resolved; only these are trusted."""
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def unwrap_mapped(ip: IPAddress) -> IPAddress:
    """The IPv4 address inside ``::ffff:a.b.c.d``, else the address itself."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def describe_ip(ip: IPAddress) -> str:
    """The class of a refused address, for an error message a person can act on."""
    ip = unwrap_mapped(ip)
    for attr in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
        if getattr(ip, f"is_{attr}"):
            return attr.replace("_", "-")
    return "non-public"


def normalize_host(host: str) -> str:
    """Lower-case, no trailing dot, IDNA (``ăș.ro`` → ``xn--...``); IP literals unchanged."""
    host = host.strip().rstrip(".").lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise BlockedUrl(f"host {host!r} is not a valid host name") from None


def split_url(url: str) -> tuple[SplitResult, str, int]:
    """(parts, normalised host, port) of an http(s) URL without credentials: the checks
    every outbound policy makes before its own, none of which needs DNS."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BlockedUrl(f"malformed URL {url[:200]!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise BlockedUrl(f"scheme {scheme + ':'!r} is never fetched (only http and https)")
    if parts.username is not None or parts.password is not None:
        raise BlockedUrl("URLs with credentials are refused")
    if not parts.hostname:
        raise BlockedUrl(f"URL {url[:200]!r} has no host")
    return parts, normalize_host(parts.hostname), port or (443 if scheme == "https" else 80)


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (A and AAAA)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve_addresses(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    """The address a literal names, else every address ``resolver`` gives (at least one):
    what a policy checks, all of them, before connecting to the first."""
    try:
        return [ipaddress.ip_address(host)]  # a literal: nothing to resolve
    except ValueError:
        pass
    try:
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in await resolver(host, port)]
    except (OSError, UnicodeError) as exc:
        raise FetchFailed(f"cannot resolve {host!r}: {exc}") from exc
    if not addresses:
        raise FetchFailed(f"{host!r} has no address")
    return addresses


@dataclass(frozen=True)
class Target:
    """A checked URL and the address to connect to for it."""

    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress

    def pinned_url(self) -> str:
        """The URL with the checked IP in place of the host name (path and query kept)."""
        parts = urlsplit(self.url)
        ip = f"[{self.ip}]" if self.ip.version == 6 else str(self.ip)
        path = parts.path or "/"
        return f"{self.scheme}://{ip}:{self.port}{path}" + (f"?{parts.query}" if parts.query
                                                             else "")

    def host_header(self) -> str:
        default = {"http": 80, "https": 443}[self.scheme]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def request(self, client: httpx.AsyncClient, method: str, headers: Mapping[str, str],
                content: bytes | None = None) -> httpx.Request:
        """A request to the checked address, the host name in ``Host`` and in TLS SNI."""
        extensions = {"sni_hostname": self.host} if self.scheme == "https" else {}
        return client.build_request(method, self.pinned_url(), content=content,
                                    headers={**headers, "host": self.host_header()},
                                    extensions=extensions)


def pinned_client(timeout_s: float,
                  transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The client for ``Target.request``: no keep-alive (the pool is keyed by IP, and a
    connection opened with one host's SNI must never carry another host's request), no
    proxies or .netrc from the environment, redirects left to the caller."""
    return httpx.AsyncClient(
        transport=transport, verify=ssl.create_default_context(), trust_env=False,
        follow_redirects=False, timeout=timeout_s,
        limits=httpx.Limits(max_keepalive_connections=0))


class UrlPolicy:
    """Which URLs a render may load: allowlisted hosts whose addresses are all public."""

    def __init__(self, allowed_hosts: Iterable[str], resolver: Resolver = system_resolver) -> None:
        self.allowed_hosts = frozenset(normalize_host(h) for h in allowed_hosts if h.strip())
        self.resolver = resolver

    def check_syntax(self, url: str) -> tuple[SplitResult, str, int]:
        """Scheme, credentials and host name checks that need no DNS."""
        parts, host, port = split_url(url)
        if host not in self.allowed_hosts:
            raise BlockedUrl(f"host {host!r} is not in WORKERS_PDF_ALLOWED_HOSTS", host=host)
        return parts, host, port

    async def check(self, url: str) -> Target:
        """Resolve and check every address; the first one is what ``fetch`` connects to."""
        parts, host, port = self.check_syntax(url)
        addresses = await resolve_addresses(host, port, self.resolver)
        for ip in addresses:  # one bad answer is enough: DNS may rotate between answers
            if not is_public_ip(ip):
                raise BlockedUrl(f"host {host!r} resolves to {ip}, a {describe_ip(ip)} address:"
                                 " never reachable from a render", host=host)
        return Target(url=parts.geturl(), scheme=parts.scheme.lower(), host=host, port=port,
                      ip=addresses[0])


@dataclass
class Fetched:
    """A final (non-redirect) response; ``url`` is where the redirects ended."""

    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    redirects: list[str] = field(default_factory=list)


class GuardedFetcher:
    """GET/HEAD through a ``UrlPolicy``: each redirect hop checked, connections pinned."""

    def __init__(self, policy: UrlPolicy, *, timeout_s: float = 15.0, max_redirects: int = 5,
                 max_bytes: int = 25 * 1024 * 1024, max_parallel: int = 8,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.policy = policy
        self.timeout_s = timeout_s
        self.max_redirects = max_redirects
        self.max_bytes = max_bytes
        self._parallel = asyncio.Semaphore(max_parallel)
        self._client = pinned_client(timeout_s, transport)

    async def fetch(self, url: str, method: str = "GET",
                    headers: Mapping[str, str] | None = None) -> Fetched:
        """Fetch ``url``, following at most ``max_redirects`` hops, each one re-checked."""
        method = method.upper()
        if method not in METHODS:
            raise BlockedUrl(f"{method} requests are never sent from a render")
        sent = {k: v for k, v in (headers or {}).items() if k.lower() in FORWARDED_HEADERS}
        hops: list[str] = []
        try:
            async with self._parallel, asyncio.timeout(self.timeout_s):
                while True:
                    target = await self.policy.check(url)
                    status, response_headers, body = await self._get(target, method, sent)
                    location = response_headers.get("location")
                    if status not in REDIRECTS or location is None:
                        return Fetched(url, status, response_headers, body, hops)
                    if len(hops) >= self.max_redirects:
                        raise FetchFailed(f"more than {self.max_redirects} redirects from "
                                          f"{(hops or [url])[0][:200]}")
                    hops.append(url)
                    url = urljoin(url, location)
        except TimeoutError:
            raise FetchFailed(f"{url[:200]} took longer than {self.timeout_s} s") from None

    async def _get(self, target: Target, method: str,
                   headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        request = target.request(self._client, method, headers)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise FetchFailed(f"{target.url[:200]}: {type(exc).__name__}: {exc}") from exc
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise FetchFailed(f"{target.url[:200]} is over {self.max_bytes} bytes")
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise FetchFailed(f"{target.url[:200]}: {type(exc).__name__}: {exc}") from exc
        finally:
            await response.aclose()
        kept = {k: v for k, v in response.headers.items()
                if k.lower() not in DROPPED_RESPONSE_HEADERS}
        return response.status_code, kept, b"".join(chunks)

    async def aclose(self) -> None:
        await self._client.aclose()
