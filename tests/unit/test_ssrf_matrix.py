"""The SSRF cases test_netguard.py leaves out: numeric IP spellings (decimal, hex, octal,
short), IPv6 forms of internal IPv4 (mapped, compatible, zone ids), URL parser confusions,
redirects to each of them, and DNS rebinding between the check and a later hop.

Numeric spellings go through the real system resolver (``getaddrinfo`` reads ``2130706433``
as 127.0.0.1, as browsers do), so they are refused even when an operator allowlists them.
"""

from __future__ import annotations

import httpx
import pytest

from workers_core.integrations.netguard import (
    BlockedUrl,
    FetchFailed,
    GuardedFetcher,
    UrlPolicy,
    system_resolver,
)

PUBLIC = "93.184.215.14"
NAMES = {"docs.example.com": [PUBLIC], "rebind.example.com": [PUBLIC, "127.0.0.1"]}

# (spelling as it appears in a URL's host, the class it must be refused as)
NUMERIC_HOSTS = [
    ("2130706433", "loopback"),  # 127.0.0.1 as one decimal number
    ("0x7f000001", "loopback"),  # hex
    ("0x7f.1", "loopback"),
    ("0177.0.0.1", "loopback"),  # octal first byte
    ("017700000001", "loopback"),
    ("127.1", "loopback"),  # short form
    ("127.000.000.001", "loopback"),
    ("2852039166", "link-local"),  # 169.254.169.254, the cloud metadata service
    ("0xa9fea9fe", "link-local"),
    ("0251.0376.0251.0376", "link-local"),
    ("169.254.169.254", "link-local"),
    ("167772161", "private"),  # 10.0.0.1
    ("0", "private"),  # 0.0.0.0 (Linux connects it to loopback); "this network"
    ("0.0.0.0", "private"),
    ("[::]", "private"),
    ("[::1]", "loopback"),
    ("[::ffff:127.0.0.1]", "loopback"),
    ("[0:0:0:0:0:ffff:7f00:1]", "loopback"),
    ("[::ffff:169.254.169.254]", "link-local"),
    ("[::ffff:a9fe:a9fe]", "link-local"),
    ("[::127.0.0.1]", "reserved"),  # IPv4-compatible (deprecated), inside ::/8
    ("[64:ff9b::a9fe:a9fe]", "reserved"),  # NAT64 of 169.254.169.254
    ("[2002:a9fe:a9fe::]", "non-public"),  # 6to4 of 169.254.169.254
    ("[fe80::1%25lo]", "link-local"),  # zone id, percent-encoded as URLs spell it
    ("[fd00:ec2::254]", "private"),  # AWS's IPv6 metadata address
]


async def names_then_system(host: str, port: int) -> list[str]:
    return NAMES[host] if host in NAMES else await system_resolver(host, port)


def _bare(host: str) -> str:
    return host.strip("[]")


def policy(*extra: str) -> UrlPolicy:
    """Every spelling allowlisted: the address check alone has to refuse it."""
    return UrlPolicy([*NAMES, *(_bare(h) for h, _ in NUMERIC_HOSTS), *extra],
                     resolver=names_then_system)


@pytest.mark.parametrize(("host", "kind"), NUMERIC_HOSTS)
async def test_every_spelling_of_an_internal_address_is_refused_even_when_allowlisted(
        host: str, kind: str) -> None:
    with pytest.raises(BlockedUrl, match=f"a {kind} address"):
        await policy().check(f"http://{host}:8080/latest/meta-data/")


@pytest.mark.parametrize(("url", "reason"), [
    ("http://docs.example.com@127.0.0.1/", "credentials"),
    ("http://127.0.0.1#@docs.example.com/", "a loopback address"),
    ("http://docs.example.com\\@127.0.0.1/", "credentials"),
    ("http://127.0.0.1:80\\@docs.example.com/", "credentials"),
    ("http://127.0.0.1\t/", "a loopback address"),  # tabs and newlines are stripped
    ("http://127.0.0.1\n:8080/", "a loopback address"),
    ("HTTP://LOCALHOST./", "a loopback address"),
    ("http://%31%32%37.0.0.1/", "not in WORKERS_PDF_ALLOWED_HOSTS"),
    ("http://127。0。0。1/", "a loopback address"),  # IDNA maps ideographic full stops
    ("gopher://127.0.0.1:6379/_INFO", "'gopher:' is never fetched"),
    ("dict://127.0.0.1:11211/stats", "'dict:' is never fetched"),
    ("data:text/html,<b>x</b>", "'data:' is never fetched"),
    ("view-source:http://127.0.0.1/", "'view-source:' is never fetched"),
    ("blob:http://127.0.0.1/x", "'blob:' is never fetched"),
    ("//127.0.0.1/", "is never fetched"),
    (" file:///etc/passwd", "'file:' is never fetched"),
])
async def test_url_parser_confusions_are_refused(url: str, reason: str) -> None:
    with pytest.raises(BlockedUrl, match=reason):
        await policy("localhost", "127.0.0.1").check(url)


REDIRECT_TARGETS = [
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://2852039166/",
    "http://0xa9fea9fe/",
    "http://0251.0376.0251.0376/",
    "http://2130706433:6379/",
    "http://127.1/",
    "http://[::]:8080/",
    "http://0.0.0.0:8080/",
    "//127.0.0.1/protocol-relative",
    "http://rebind.example.com/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "http://docs.example.com@127.0.0.1/",
]


@pytest.mark.parametrize("location", REDIRECT_TARGETS)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_to_any_internal_spelling_is_never_followed(
        location: str, status: int) -> None:
    requested: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(str(request.url))
        return httpx.Response(status, headers={"location": location})

    fetcher = GuardedFetcher(policy(), transport=httpx.MockTransport(handler))
    # An octal dotted quad is no URL to httpx: it refuses the Location (FetchFailed).
    with pytest.raises((BlockedUrl, FetchFailed)):
        await fetcher.fetch("http://docs.example.com/start")
    await fetcher.aclose()
    assert requested == [f"http://{PUBLIC}/start"]  # only the allowed first hop


async def test_dns_rebinding_cannot_move_a_checked_request_or_a_later_hop() -> None:
    """The answer changes to loopback after the check: the request still goes to the
    address that was checked, and the next hop to that host is checked anew and refused."""
    answers = iter([[PUBLIC], ["127.0.0.1"], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    requested: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(str(request.url))
        return httpx.Response(302, headers={"location": "/again"})

    fetcher = GuardedFetcher(UrlPolicy(["flip.example.com"], resolver=rebinding),
                             transport=httpx.MockTransport(handler))
    with pytest.raises(BlockedUrl, match=r"127\.0\.0\.1, a loopback address"):
        await fetcher.fetch("http://flip.example.com/")
    await fetcher.aclose()
    assert requested == [f"http://{PUBLIC}/"]


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1",
                                  "[::ffff:7f00:1]", "0"])
async def test_a_real_loopback_server_sees_nothing_whatever_the_spelling(
        loopback_server: tuple[int, list[str]], host: str) -> None:
    port, hits = loopback_server
    fetcher = GuardedFetcher(policy())
    with pytest.raises(BlockedUrl):
        await fetcher.fetch(f"http://{host}:{port}/secret")
    await fetcher.aclose()
    assert hits == []
