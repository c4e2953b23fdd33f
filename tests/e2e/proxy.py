"""A round-robin reverse proxy, as a load balancer in front of replicas (test-only).

Each request goes to the next backend in turn; a backend that refuses the connection (a dead
replica) is skipped, as nginx's `proxy_next_upstream error` does.
"""

from __future__ import annotations

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
