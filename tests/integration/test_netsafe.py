"""Downloads go only to the API's origin or to https on public addresses, redirects included."""

from __future__ import annotations

from collections.abc import Iterable

import httpcore
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.userapi import UserAPIClient, UserAPIError
from bot.userapi.netsafe import UnsafeURLError, URLPolicy, is_public, pinned_transport

API = "http://api.test"
ADDRESSES = {
    "cdn.example.com": ["93.184.215.14"],
    "inside.example.com": ["10.0.0.7"],
    "mixed.example.com": ["93.184.215.14", "127.0.0.1"],
    "metadata.example.com": ["169.254.169.254"],
}


async def resolve(host: str, port: int) -> list[str]:
    """DNS as the test world has it."""
    if host not in ADDRESSES:
        raise OSError(f"unknown host {host}")
    return ADDRESSES[host]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("fe80::1%eth0", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("not an ip", False),
        # IPv6 that carries an IPv4 address a gateway would turn into it, or isn't global unicast.
        ("::127.0.0.1", False),
        ("::8.8.8.8", False),
        ("64:ff9b::7f00:1", False),
        ("64:ff9b:1::a00:1", False),
        ("2002:7f00:1::1", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
        ("fc00::1", False),
        ("100::1", False),
        ("::ffff:8.8.8.8", True),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(address) is public


def test_looks_safe_without_dns() -> None:
    policy = URLPolicy([API], resolve)
    assert policy.looks_safe(f"{API}/cdn/a.png")  # the API's own files, even over http
    assert policy.looks_safe("https://cdn.example.com/a.png")
    assert policy.looks_safe("https://93.184.215.14/a.png")
    for url in (
        "http://cdn.example.com/a.png",
        "https://127.0.0.1/a.png",
        "https://[::1]/a.png",
        "https://localhost/a.png",
        "https://LOCALHOST./a.png",
        "http://api.test:8080/a.png",  # another port is another origin
        "file:///etc/passwd",
        "ftp://cdn.example.com/a.png",
        "not a url",
    ):
        assert not policy.looks_safe(url), url


async def test_downloads_refuse_private_names_and_redirects_to_them() -> None:
    requested: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(str(request.url))
        if request.url.path == "/to-loopback":
            return httpx.Response(302, headers={"location": "http://127.0.0.1:8080/admin"})
        if request.url.path == "/to-inside":
            return httpx.Response(301, headers={"location": "https://inside.example.com/x"})
        if request.url.path == "/to-cdn":
            return httpx.Response(302, headers={"location": "/ok.png"})
        return httpx.Response(200, content=b"png")

    async with UserAPIClient(
        base_url=API,
        api_key="k",
        transport=httpx.MockTransport(handler),
        resolve=resolve,
        retry_backoff=0.01,
    ) as api:
        assert await api.fetch("https://cdn.example.com/to-cdn", max_bytes=10) == b"png"
        assert await api.fetch(f"{API}/cdn/grid.png", max_bytes=10) == b"png"
        requested.clear()
        for url in (
            "https://inside.example.com/a.png",
            "https://mixed.example.com/a.png",
            "https://metadata.example.com/latest",
            "https://nowhere.example.com/a.png",
            "http://cdn.example.com/a.png",
            "https://127.0.0.1/a.png",
        ):
            with pytest.raises(UserAPIError) as refused:
                await api.fetch(url, max_bytes=10)
            assert not refused.value.retryable
        assert requested == []  # refused before any connection

        for url in ("https://cdn.example.com/to-loopback", "https://cdn.example.com/to-inside"):
            with pytest.raises(UserAPIError, match="refused"):
                await api.fetch(url, max_bytes=10)
        # The first hop was fetched (public), the redirect's target never was.
        assert requested == [
            "https://cdn.example.com/to-loopback",
            "https://cdn.example.com/to-inside",
        ]


class Recorder(httpcore.AsyncNetworkBackend):
    """A network with nothing behind it that remembers where it was asked to connect."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        raise httpcore.ConnectError("no network here")


async def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    """DNS rebinding: a second lookup would answer 127.0.0.1; there is no second lookup."""
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    network = Recorder()
    policy = URLPolicy([API], rebinding)
    async with UserAPIClient(
        base_url=API,
        api_key="k",
        transport=pinned_transport(policy, network),
        resolve=rebinding,
        retry_attempts=1,
    ) as api:
        with pytest.raises(UserAPIError, match="network error"):
            await api.fetch("https://cdn.example.com/a.png", max_bytes=10)
    assert asked == ["cdn.example.com"]
    assert network.hosts == ["93.184.215.14"]


async def test_the_name_checked_is_the_ascii_name_connected_to() -> None:
    asked: list[str] = []

    async def dns(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["93.184.215.14"]

    network = Recorder()
    async with UserAPIClient(
        base_url=API,
        api_key="k",
        transport=pinned_transport(URLPolicy([API], dns), network),
        resolve=dns,
        retry_attempts=1,
    ) as api:
        with pytest.raises(UserAPIError, match="network error"):
            await api.fetch("https://bücher.example/a.png", max_bytes=10)
    assert asked == ["xn--bcher-kva.example"]
    assert network.hosts == ["93.184.215.14"]


async def test_a_host_nobody_checked_is_not_connected_to() -> None:
    network = Recorder()
    transport = pinned_transport(URLPolicy([API], resolve), network)
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(UnsafeURLError, match="not checked"):
            await http.get("https://cdn.example.com/a.png")
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{API}/cdn/a.png")  # the API's origin is connected to as it is
    assert network.hosts == ["api.test"]


async def test_the_api_origin_is_reached_through_the_pinned_transport() -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=b"png")

    app = web.Application()
    app.router.add_get("/cdn/a.png", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        base = str(server.make_url("")).rstrip("/")
        async with UserAPIClient(base_url=base, api_key="k", resolve=resolve) as api:
            assert await api.fetch(f"{base}/cdn/a.png", max_bytes=10) == b"png"
            with pytest.raises(UserAPIError, match="refused"):
                await api.fetch(
                    str(server.make_url("/cdn/a.png")).replace("127.0.0.1", "localhost"),
                    max_bytes=10,
                )
    finally:
        await server.close()
