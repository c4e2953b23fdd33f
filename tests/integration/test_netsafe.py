"""Downloads go only to the API's origin or to https on public addresses, redirects included."""

from __future__ import annotations

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.userapi import UserAPIClient, UserAPIError
from bot.userapi.netsafe import UnsafeURLError, URLPolicy, is_public

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


async def test_a_response_from_a_non_public_peer_is_refused() -> None:
    """The connected address is checked too: a name may resolve differently the second time."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=b"png")

    app = web.Application()
    app.router.add_get("/a.png", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        policy = URLPolicy([API], resolve)
        async with (
            httpx.AsyncClient() as http,
            http.stream("GET", str(server.make_url("/a.png"))) as response,
        ):
            # As if "cdn.example.com" had resolved to 127.0.0.1 at connection time.
            with pytest.raises(UnsafeURLError, match="connected to a non-public"):
                policy.check_peer(httpx.URL("https://cdn.example.com/a.png"), response)
            policy.check_peer(httpx.URL(f"{API}/a.png"), response)  # trusted origin
    finally:
        await server.close()
