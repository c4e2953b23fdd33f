"""Which URLs the bot may download: https from public addresses, or the API's own origin.

A result URL arrives in a webhook anyone who learns its address can forge; downloading it
blindly would let them make the bot fetch loopback or private services and post the bytes.
A name is resolved once, its addresses checked, and the connection made to those addresses
(`pinned` + `PinnedBackend`): a second lookup could answer differently (DNS rebinding), and
the name the check resolves is the one the connection uses (its ASCII, IDNA-encoded form).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import typing
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

# Resolves a host name to its IP addresses (injectable: tests run without DNS).
Resolver = Callable[[str, int], Awaitable[list[str]]]


class UnsafeURLError(Exception):
    """A URL the bot refuses to fetch (the message says why, without the query string)."""


def origin_of(url: httpx.URL) -> tuple[str, str, int | None]:
    """The scheme, host and port that identify where a URL points."""
    port = url.port or (443 if url.scheme == "https" else 80 if url.scheme == "http" else None)
    return url.scheme, url.host.lower(), port


# Where IPv6 is an ordinary internet host: global unicast, and none of the ranges that carry
# an IPv4 address inside (a gateway would turn them into that IPv4 address, 127.0.0.1 too).
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_EMBEDS_IPV4 = (
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible, ::a.b.c.d
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # local-use NAT64
    ipaddress.IPv6Network("2002::/16"),  # 6to4
    ipaddress.IPv6Network("2001::/32"),  # Teredo
)


def is_public(address: str) -> bool:
    """Whether an IP address is on the public internet (not loopback, private, reserved...)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket connects to the IPv4 address itself
        elif ip not in _GLOBAL_UNICAST or any(ip in net for net in _EMBEDS_IPV4):
            return False
    return ip.is_global and not ip.is_multicast


def connect_host(url: httpx.URL) -> str:
    """The host name as the connection uses it: ASCII (IDNA-encoded), lower case."""
    return url.raw_host.decode("ascii").lower()


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for a host."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class URLPolicy:
    """Decides whether a URL may be fetched: trusted origins, or https to public addresses."""

    def __init__(self, trusted: Iterable[str] = (), resolve: Resolver | None = None) -> None:
        urls = [httpx.URL(url) for url in trusted]
        self._trusted = {origin_of(url) for url in urls}
        self._endpoints = {(connect_host(url), origin_of(url)[2] or 0) for url in urls}
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

    async def check(self, url: httpx.URL) -> list[str]:
        """The addresses to connect to (none for a trusted origin); UnsafeURLError if unsafe."""
        label = f"{url.scheme}://{url.host}{url.path}"
        if self.trusted(url):
            return []
        if url.scheme != "https":
            raise UnsafeURLError(f"refused {label}: not https")
        if not self.looks_safe(str(url)):
            raise UnsafeURLError(f"refused {label}: not a public address")
        host = connect_host(url)
        try:
            addresses = await self._resolve(host, url.port or 443)
        except (OSError, UnicodeError) as error:
            raise UnsafeURLError(f"refused {label}: {url.host} does not resolve") from error
        if not addresses or not all(is_public(address) for address in addresses):
            raise UnsafeURLError(f"refused {label}: {url.host} resolves to a non-public address")
        return addresses

    def trusted_endpoints(self) -> set[tuple[str, int]]:
        """The (host, port) pairs connected to without a check: the trusted origins."""
        return set(self._endpoints)


# The checked addresses of the names the current task is about to connect to.
_PINS: ContextVar[dict[str, list[str]] | None] = ContextVar("netsafe_pins", default=None)


@contextlib.contextmanager
def pinned(url: httpx.URL, addresses: list[str]) -> Iterator[None]:
    """Within this block, a connection to the URL's host goes to these checked addresses."""
    token = _PINS.set({**(_PINS.get() or {}), connect_host(url): addresses})
    try:
        yield
    finally:
        _PINS.reset(token)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to trusted origins as asked, and to other hosts only at their pinned addresses.

    httpcore connects in the task that sends the request, so the pins set around a request
    (a context variable) are the ones seen here; a host without pins is refused (fail closed).
    """

    def __init__(
        self,
        trusted: Iterable[tuple[str, int]],
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._trusted = {(host.lower(), port) for host, port in trusted}
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore names it so
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """A connection to the host if trusted, else to the first pinned address that answers."""
        if (host.lower(), port) in self._trusted:
            return await self._inner.connect_tcp(
                host, port, timeout, local_address, socket_options
            )
        addresses = (_PINS.get() or {}).get(host.lower())
        if not addresses:
            raise UnsafeURLError(f"refused {host}: not checked before connecting")
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore names it so
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never: downloads go over TCP only."""
        raise UnsafeURLError("refused a unix socket connection")

    async def sleep(self, seconds: float) -> None:
        """Sleep as the wrapped backend does (httpcore's retries use it)."""
        await self._inner.sleep(seconds)


def pinned_transport(
    policy: URLPolicy, inner: httpcore.AsyncNetworkBackend | None = None
) -> httpx.AsyncHTTPTransport:
    """httpx's own transport, its connections made through a PinnedBackend for the policy."""
    transport = httpx.AsyncHTTPTransport()
    # httpx has no setting for httpcore's network backend; its pool does. The pool below has
    # httpx's default limits and TLS context; tests/integration/test_netsafe.py checks that
    # connections really go through the backend, so a change in httpx shows there.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=PinnedBackend(policy.trusted_endpoints(), inner),
    )
    return transport


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
