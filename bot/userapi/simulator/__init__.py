"""A local stand-in for api.userapi.ai (see README.md here); knows nothing of the bot."""

from __future__ import annotations

from aiohttp import web

from bot.userapi.simulator.control import ControlRoutes
from bot.userapi.simulator.model import (
    API,
    DEFAULT_ACCOUNT,
    FAKE_DISCORD_TOKEN,
    MAX_BODY,
    PROGRESS_STEPS,
    ApiError,
    Handler,
    RecordedRequest,
    SimulatorConfig,
    WebhookDelivery,
    _StoredFile,
    logger,
)
from bot.userapi.simulator.routes import ApiRoutes

__all__ = [
    "API",
    "DEFAULT_ACCOUNT",
    "FAKE_DISCORD_TOKEN",
    "PROGRESS_STEPS",
    "ApiError",
    "RecordedRequest",
    "Simulator",
    "SimulatorConfig",
    "WebhookDelivery",
    "_StoredFile",
]


class Simulator(ApiRoutes, ControlRoutes):
    """The userapi.ai Midjourney API, simulated: tasks, webhooks, images, faults."""

    def build_app(self) -> web.Application:
        """The aiohttp application serving the API, the CDN and the control endpoints."""
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY)
        routes: list[tuple[str, str, Handler]] = [
            ("POST", f"{API}/imagine", self._imagine),
            ("POST", f"{API}/animate", self._animate),
            ("POST", f"{API}/describe", self._describe),
            ("POST", f"{API}/upload", self._upload),
            ("POST", f"{API}/upscale", self._upscale),
            ("POST", f"{API}/upsample", self._upsample),
            ("POST", f"{API}/variation", self._variation),
            ("POST", f"{API}/seed", self._seed),
            ("POST", f"{API}/vary-subtle", self._vary_subtle),
            ("POST", f"{API}/vary-strong", self._vary_strong),
            ("POST", f"{API}/inpaint", self._inpaint),
            ("POST", f"{API}/blend", self._blend),
            ("POST", f"{API}/reroll", self._reroll),
            ("POST", f"{API}/zoom", self._zoom),
            ("POST", f"{API}/pan", self._pan),
            ("POST", f"{API}/info", self._info),
            ("POST", f"{API}/prefer", self._prefer),
            ("POST", f"{API}/speed", self._speed),
            ("GET", f"{API}/status", self._status),
            ("GET", "/discord/info", self._discord_info),
            ("GET", "/cdn/{name}", self._cdn),
            ("GET", "/_sim/requests", self._ctl_requests),
            ("DELETE", "/_sim/requests", self._ctl_clear_requests),
            ("GET", "/_sim/tasks", self._ctl_tasks),
            ("POST", "/_sim/config", self._ctl_config),
            ("POST", "/_sim/accounts/{hash}", self._ctl_account),
            ("POST", "/_sim/faults", self._ctl_faults),
            ("POST", "/_sim/release", self._ctl_release),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = any free port) and return the base URL."""
        self._stopping.clear()
        # A short shutdown timeout: a client may have walked away from a delayed fault answer.
        runner = web.AppRunner(self.build_app(), shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound = runner.addresses[0][1] if runner.addresses else port
        self.base_url = f"http://{host}:{bound}"
        logger.info("userapi simulator listening on %s", self._base_url)
        return self.base_url

    async def stop(self) -> None:
        """Stop serving, cancel running tasks and close the webhook session."""
        await self._halt_runners()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._close_session()
