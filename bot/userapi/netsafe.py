"""Which URLs the bot may download: https from public addresses, or the API's own origin.

A result URL arrives in a webhook anyone who learns its address can forge; downloading it
blindly would let them make the bot fetch loopback or private services and post the bytes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import httpx

# Resolves a host name to its IP addresses (injectable: tests run without DNS).
Resolver = Callable[[str, int], Awaitable[list[str]]]


class UnsafeURLError(Exception):
    """A URL the bot refuses to fetch (the message says why, without the query string)."""


def origin_of(url: httpx.URL) -> tuple[str, str, int | None]:
    """The scheme, host and port that identify where a URL points."""
    port = url.port or (443 if url.scheme == "https" else 80 if url.scheme == "http" else None)
    return url.scheme, url.host.lower(), port


def is_public(address: str) -> bool:
    """Whether an IP address is on the public internet (not loopback, private, reserved...)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for a host."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class URLPolicy:
    """Decides whether a URL may be fetched: trusted origins, or https to public addresses."""

    def __init__(self, trusted: Iterable[str] = (), resolve: Resolver | None = None) -> None:
        self._trusted = {origin_of(httpx.URL(url)) for url in trusted}
        self._resolve = resolve or system_resolve

    def trusted(self, url: httpx.URL) -> bool:
        """Whether the URL is on an origin trusted as it is (the API's own, the simulator's)."""
        return origin_of(url) in self._trusted

    def looks_safe(self, url: str) -> bool:
        """A check without DNS: trusted, or https to a name or a public IP literal."""
        try:
            target = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            return False
        if self.trusted(target):
            return True
        if target.scheme != "https" or not target.host:
            return False
        host = target.host.lower().rstrip(".")
        if host == "localhost" or host.endswith(".localhost"):
            return False
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return True  # a name: its addresses are checked when it is fetched
        return is_public(host)

    async def check(self, url: httpx.URL) -> None:
        """Raise UnsafeURLError unless the URL is trusted or https resolving only to public IPs."""
        label = f"{url.scheme}://{url.host}{url.path}"
        if self.trusted(url):
            return
        if url.scheme != "https":
            raise UnsafeURLError(f"refused {label}: not https")
        if not self.looks_safe(str(url)):
            raise UnsafeURLError(f"refused {label}: not a public address")
        try:
            addresses = await self._resolve(url.host, url.port or 443)
        except OSError as error:
            raise UnsafeURLError(f"refused {label}: {url.host} does not resolve") from error
        if not addresses or not all(is_public(address) for address in addresses):
            raise UnsafeURLError(f"refused {label}: {url.host} resolves to a non-public address")

    def check_peer(self, url: httpx.URL, response: httpx.Response) -> None:
        """Refuse a response from a non-public peer (a name re-resolved between check and use)."""
        if self.trusted(url):
            return
        stream: Any = response.extensions.get("network_stream")
        if stream is None:
            return  # not a network transport (a test's mock): nothing was connected to
        peer = stream.get_extra_info("server_addr")
        if isinstance(peer, tuple) and peer and not is_public(str(peer[0])):
            raise UnsafeURLError(
                f"refused {url.host}{url.path}: connected to a non-public address"
            )


def urls_in(value: Any) -> Iterator[str]:
    """Every string in a JSON value that looks like a URL (what a result would make us fetch)."""
    if isinstance(value, str):
        if "://" in value or value.startswith("//"):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from urls_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from urls_in(item)
