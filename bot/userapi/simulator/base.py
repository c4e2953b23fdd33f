"""The simulator's state and plumbing: recorded requests, faults, pacing, hold and release."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from bot.userapi.simulator.model import (
    FINAL_STATUSES,
    ApiError,
    Handler,
    RecordedRequest,
    SimulatorConfig,
    WebhookDelivery,
    _Account,
    _error_response,
    _Fault,
    _StoredFile,
)


class SimulatorBase:
    """The simulator's state, its public controls, and the HTTP plumbing every part uses."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        """Prepare an idle simulator; nothing is served until start() or build_app()."""
        self.config = config or SimulatorConfig()
        self.requests: list[RecordedRequest] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.webhooks: list[WebhookDelivery] = []
        self._accounts: dict[str, _Account] = {}
        self._files: dict[str, _StoredFile] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._upscaled: set[tuple[str, int]] = set()
        self._seeded: set[str] = set()
        self._animated: set[str] = set()
        # For singles (upscale/upsample): which grid's palette and which quadrant they show.
        self._look: dict[str, tuple[str, int]] = {}
        self._runners: set[asyncio.Task[None]] = set()
        self._rotation = 0
        self._release_event = asyncio.Event()
        self._stopping = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # ----- public control -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The URL the simulator is served at, e.g. http://127.0.0.1:8090."""
        if self._base_url is None:
            raise RuntimeError("Simulator is not started")
        return self._base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        self._base_url = value.rstrip("/")

    def release(self) -> None:
        """Turn hold off and let held tasks continue."""
        self.config.hold = False
        self._release_event.set()
        self._release_event = asyncio.Event()

    def set_account(
        self,
        account_hash: str,
        *,
        status: str = "active",
        reason: str | None = None,
        remix: bool | None = None,
        fast_remaining_sec: int | None = None,
    ) -> None:
        """Change (or create) an account's Discord status, remix mode or fast time."""
        account = self._accounts.setdefault(account_hash, _Account(account_hash))
        account.status = status
        account.reason = reason
        if remix is not None:
            account.remix = remix
        if fast_remaining_sec is not None:
            account.fast_remaining_sec = fast_remaining_sec

    def account_speed(self, account_hash: str) -> str:
        """The speed mode last set for an account by /speed."""
        return self._account(account_hash).speed

    def fail_next(
        self,
        path: str,
        *,
        status: int = 500,
        body: str | bytes = '{"status": false, "error": "Internal server error"}',
        content_type: str = "application/json",
        times: int = 1,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` requests to `path` with this response, after `delay` s."""
        data = body.encode() if isinstance(body, str) else body
        self._faults.setdefault(path, []).append(_Fault(status, data, content_type, times, delay))

    async def wait_for_status(
        self,
        hash: str,
        status: str,
        timeout: float = 10,  # noqa: ASYNC109 - a test helper's familiar signature
    ) -> dict[str, Any]:
        """Wait until task `hash` passed `status` (webhook attempted); return it as it was then."""
        deadline = time.monotonic() + timeout
        while True:
            snapshots: list[dict[str, Any]] = self.history.get(hash, [])
            for snapshot in snapshots[::-1]:
                if snapshot["status"] == status:
                    return snapshot
            last = snapshots[-1] if snapshots else None
            if last is not None and last["status"] in FINAL_STATUSES:
                raise AssertionError(
                    f"task {hash} ended {last['status']} "
                    f"({last.get('status_reason')}) without reaching {status}"
                )
            if time.monotonic() > deadline:
                state = last["status"] if last else "unknown"
                raise TimeoutError(f"task {hash} is {state}, not {status}, after {timeout}s")
            await asyncio.sleep(0.01)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Recorded requests whose path equals `path`."""
        return [r for r in self.requests if r.path == path]

    def clear_requests(self) -> None:
        """Forget recorded requests."""
        self.requests.clear()

    def file(self, name: str) -> bytes | None:
        """The bytes the CDN serves under `name`, if any."""
        stored = self._files.get(name)
        return stored.data if stored else None

    # ----- plumbing ---------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._base_url is None:
            # Served by someone else's runner: learn our address from the first request.
            self.base_url = str(request.url.origin())
        if not request.path.startswith("/_sim/"):
            body = await request.read()
            self.requests.append(
                RecordedRequest(
                    request.method,
                    request.path,
                    request.query_string,
                    dict(request.headers),
                    body,
                )
            )
            fault = self._take_fault(request.path)
            if fault is not None:
                if fault.delay > 0:
                    await self._pause(fault.delay)
                return web.Response(
                    status=fault.status,
                    body=fault.body,
                    headers={"Content-Type": fault.content_type},
                )
            if not request.path.startswith("/cdn/"):
                key = request.headers.get("api-key", "").strip()
                if not key or (self.config.api_key is not None and key != self.config.api_key):
                    return _error_response(401, "Invalid api key")
        try:
            return await handler(request)
        except ApiError as exc:
            return _error_response(exc.status, exc.message)
        except web.HTTPNotFound:
            return _error_response(404, "Not found")
        except web.HTTPMethodNotAllowed:
            return _error_response(405, "Method not allowed")

    def _take_fault(self, path: str) -> _Fault | None:
        queue = self._faults.get(path)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        return fault

    async def _pause(self, seconds: float) -> None:
        # Cut short by stop(), so a long "timeout" fault never delays shutdown.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _sleep(self) -> None:
        await asyncio.sleep(max(0.0, self.config.pace))

    async def _held(self) -> None:
        # Woken by `release()`, not by polling: the benchmark holds hundreds of tasks, and a
        # poll each every 0.1 s took a sixth of the process that also plays Telegram.
        while self.config.hold:
            await self._release_event.wait()

    async def _halt_runners(self) -> None:
        self._stopping.set()
        runners = list(self._runners)
        for runner in runners:
            runner.cancel()
        for runner in runners:
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        self._runners.clear()

    async def _close_session(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self._halt_runners()

    async def _on_cleanup(self, _app: web.Application) -> None:
        await self._close_session()

    def _account(self, account_hash: str) -> _Account:
        if account_hash not in self._accounts:
            if account_hash not in self.config.accounts:
                raise ApiError(404, "Account not found")
            self._accounts[account_hash] = _Account(account_hash)
        return self._accounts[account_hash]

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, "Invalid JSON body") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        return body
