"""The URL policy of rendered documents, without a browser: hosts, addresses, redirects, pinning."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from workers_core.integrations.netguard import (
    BlockedUrl,
    FetchFailed,
    GuardedFetcher,
    UrlPolicy,
    is_public_ip,
    normalize_host,
)

PUBLIC = "93.184.215.14"
DNS = {
    "docs.example.com": [PUBLIC],
    "cdn.example.com": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "intranet.example.com": ["10.0.0.7"],
    "metadata.example.com": ["169.254.169.254"],
    "rebind.example.com": [PUBLIC, "127.0.0.1"],  # one bad answer among good ones
    "mapped.example.com": ["::ffff:127.0.0.1"],
    "localhost": ["127.0.0.1", "::1"],
}
ALLOWED = [*DNS, "127.0.0.1", "::ffff:127.0.0.1", "Straße.example.com."]


async def fake_dns(host: str, port: int) -> list[str]:
    if host not in DNS:
        raise OSError(f"NXDOMAIN {host}")
    return DNS[host]


def policy() -> UrlPolicy:
    return UrlPolicy(ALLOWED, resolver=fake_dns)


@pytest.mark.parametrize("ip", [
    "127.0.0.1", "127.8.9.10", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "fe80::1", "fc00::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "100.64.0.1", "240.0.0.1",
    "255.255.255.255", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::", "64:ff9b::7f00:1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe", "198.18.0.1", "192.0.2.1",
])
def test_private_loopback_link_local_and_special_addresses_are_not_public(ip: str) -> None:
    assert not is_public_ip(ipaddress.ip_address(ip))


@pytest.mark.parametrize("ip", [PUBLIC, "1.1.1.1", "2606:4700:4700::1111",
                                ])
def test_global_unicast_addresses_are_public(ip: str) -> None:
    assert is_public_ip(ipaddress.ip_address(ip))


def test_host_names_are_compared_in_one_canonical_form() -> None:
    assert normalize_host("Docs.Example.COM.") == "docs.example.com"
    assert normalize_host("[::FFFF:7F00:1]") == "::ffff:7f00:1"
    assert normalize_host("straße.example.com") == normalize_host("STRASSE.example.com")


@pytest.mark.parametrize(("url", "reason"), [
    ("file:///etc/passwd", "'file:' is never fetched"),
    ("FILE:///etc/passwd", "'file:' is never fetched"),
    ("ftp://docs.example.com/x", "'ftp:' is never fetched"),
    ("ws://docs.example.com/x", "'ws:' is never fetched"),
    ("javascript:alert(1)", "'javascript:' is never fetched"),
    ("http://evil.example.net/", "host 'evil.example.net' is not in WORKERS_PDF_ALLOWED_HOSTS"),
    ("http://docs.example.com.evil.net/", "not in WORKERS_PDF_ALLOWED_HOSTS"),
    ("http://user:pw@docs.example.com/", "credentials"),
    ("http://docs.example.com:99999/", "malformed"),
])
def test_syntax_rules_need_no_dns(url: str, reason: str) -> None:
    with pytest.raises(BlockedUrl, match=reason):
        policy().check_syntax(url)


@pytest.mark.parametrize(("url", "reason"), [
    ("http://localhost:8080/", "resolves to 127.0.0.1, a loopback address"),
    ("http://127.0.0.1/", "a loopback address"),
    ("http://intranet.example.com/", "10.0.0.7, a private address"),
    ("http://metadata.example.com/latest/meta-data/", "169.254.169.254, a link-local address"),
    ("https://rebind.example.com/", "127.0.0.1, a loopback address"),
    ("http://mapped.example.com/", "::ffff:7f00:1, a loopback address"),
])
async def test_allowlisted_hosts_resolving_to_internal_addresses_are_refused(
        url: str, reason: str) -> None:
    with pytest.raises(BlockedUrl, match=reason):
        await policy().check(url)


async def test_a_public_host_is_pinned_to_the_address_that_was_checked() -> None:
    target = await policy().check("https://docs.example.com/a/b?x=1#frag")
    assert str(target.ip) == PUBLIC
    assert target.pinned_url() == f"https://{PUBLIC}:443/a/b?x=1"
    assert target.host_header() == "docs.example.com"
    v6 = await policy().check("http://cdn.example.com:8080/")
    assert v6.pinned_url() == "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8080/"
    assert v6.host_header() == "cdn.example.com:8080"


async def test_an_unresolvable_host_is_a_retryable_failure() -> None:
    p = UrlPolicy(["nowhere.example.com"], resolver=fake_dns)
    with pytest.raises(FetchFailed, match="cannot resolve") as err:
        await p.check("http://nowhere.example.com/")
    assert err.value.retryable


def fetcher_with(handler: httpx.MockTransport, **kw: int) -> GuardedFetcher:
    return GuardedFetcher(policy(), transport=handler, **kw)


async def test_requests_go_to_the_pinned_ip_with_host_header_and_sni() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"content-type": "text/css",
                                            "content-encoding": "identity"}, content=b"p{}")

    fetcher = fetcher_with(httpx.MockTransport(handler))
    got = await fetcher.fetch("https://docs.example.com/style.css",
                              headers={"User-Agent": "ua", "Cookie": "secret=1"})
    await fetcher.aclose()
    [request] = seen
    assert request.url.host == PUBLIC and request.headers["host"] == "docs.example.com"
    assert request.extensions["sni_hostname"] == "docs.example.com"
    assert request.headers["user-agent"] == "ua" and "cookie" not in request.headers
    assert got.status == 200 and got.body == b"p{}" and got.headers["content-type"] == "text/css"
    assert "content-encoding" not in got.headers


@pytest.mark.parametrize(("location", "reason"), [
    ("http://127.0.0.1:8080/admin", "loopback"),
    ("http://localhost/", "loopback"),
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://intranet.example.com/", "private"),
    ("http://metadata.example.com/latest/", "link-local"),
    ("http://evil.example.net/", "not in WORKERS_PDF_ALLOWED_HOSTS"),
    ("file:///etc/passwd", "'file:' is never fetched"),
])
async def test_every_redirect_hop_is_checked_before_it_is_requested(
        location: str, reason: str) -> None:
    requested: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(str(request.url))
        return httpx.Response(302, headers={"location": location})

    fetcher = fetcher_with(httpx.MockTransport(handler))
    with pytest.raises(BlockedUrl, match=reason):
        await fetcher.fetch("http://docs.example.com/start")
    await fetcher.aclose()
    assert requested == [f"http://{PUBLIC}/start"]  # the refused hop was never requested


async def test_redirects_between_allowed_public_hosts_are_followed_and_bounded() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/loop":
            return httpx.Response(301, headers={"location": "/loop"})
        if request.headers["host"] == "docs.example.com":
            return httpx.Response(307, headers={"location": "http://cdn.example.com/logo.png"})
        return httpx.Response(200, content=b"PNG")

    fetcher = fetcher_with(httpx.MockTransport(handler), max_redirects=3)
    got = await fetcher.fetch("http://docs.example.com/logo")
    assert got.body == b"PNG" and got.url == "http://cdn.example.com/logo.png"
    assert got.redirects == ["http://docs.example.com/logo"]
    with pytest.raises(FetchFailed, match="more than 3 redirects"):
        await fetcher.fetch("http://docs.example.com/loop")
    await fetcher.aclose()


async def test_only_get_and_head_leave_a_render_and_bodies_are_capped() -> None:
    fetcher = fetcher_with(httpx.MockTransport(lambda r: httpx.Response(200, content=b"x" * 100)),
                           max_bytes=10)
    with pytest.raises(BlockedUrl, match="POST requests are never sent"):
        await fetcher.fetch("http://docs.example.com/form", method="POST")
    with pytest.raises(FetchFailed, match="over 10 bytes"):
        await fetcher.fetch("http://docs.example.com/big")
    await fetcher.aclose()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_a_real_loopback_server_gets_no_request_even_when_allowlisted(
        loopback_server: tuple[int, list[str]], host: str) -> None:
    port, hits = loopback_server
    fetcher = GuardedFetcher(UrlPolicy(["127.0.0.1", "localhost", "::ffff:127.0.0.1"]))
    with pytest.raises(BlockedUrl, match="loopback"):
        await fetcher.fetch(f"http://{host}:{port}/secret")
    await fetcher.aclose()
    assert hits == []
