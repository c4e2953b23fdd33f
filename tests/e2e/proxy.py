"""A round-robin reverse proxy, as a load balancer in front of replicas (test-only).

Each request goes to the next backend in turn; a backend that refuses the connection (a dead
replica) is skipped, as nginx's `proxy_next_upstream error` does.
"""

from __future__ import annotations

import asyncio
import itertools

import aiohttp
from aiohttp import web

from tests.e2e.harness import free_port


class RoundRobinProxy:
    """Forwards every request to the backends in turn."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self._turns = itertools.cycle(range(len(backends)))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.served: list[str] = []
        # While set, every request goes to this backend (to show one replica's work).
        self.pinned: str | None = None
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Listen on 127.0.0.1:port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._client = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Stop listening."""
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._client is not None
        body = await request.read()
        hop = {"host", "content-length", "transfer-encoding"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in hop}
        for _ in self.backends:
            backend = self.pinned or self.backends[next(self._turns)]
            try:
                async with self._client.request(
                    request.method, backend + request.path_qs, data=body, headers=headers
                ) as answer:
                    self.served.append(backend)
                    return web.Response(
                        status=answer.status,
                        body=await answer.read(),
                        content_type=answer.content_type,
                    )
            except aiohttp.ClientConnectionError:
                continue  # that replica is gone: the next one
        return web.Response(status=502)


class TcpRelay:
    """Relays TCP connections to a server, and can cut them all (a server gone, a cable out)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def start(self) -> None:
        """Accept connections on 127.0.0.1:port and relay them (again, after `cut`)."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Refuse new connections and break the open ones, as a dead server would."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def stall(self) -> None:
        """Hold what either side sends, unanswered and unrefused, as a hung server would."""
        self._flowing.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        pipes = [
            asyncio.create_task(_pipe(reader, upstream_writer, self._flowing)),
            asyncio.create_task(_pipe(upstream_reader, writer, self._flowing)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
                self._pipes.discard(pipe)
            writer.close()
            upstream_writer.close()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event
) -> None:
    while data := await reader.read(65536):
        await flowing.wait()
        writer.write(data)
        await writer.drain()
