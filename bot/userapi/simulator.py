"""A local stand-in for api.userapi.ai: the same HTTP API, served by aiohttp, with real images.

The bot runs against it when no USERAPI_KEY is configured, and every test uses it. It knows
nothing of the bot (only the API document), so agreement between the two is earned.

Run it alone: ``python -m bot.userapi.simulator --host 127.0.0.1 --port 8090 --pace 1.0``.

Prompt directives (anywhere in a prompt; children inherit their parent's prompt, so they
propagate down a job tree):

- ``sim:error``     the task fails after it starts, status_reason "Simulated Midjourney failure".
- ``sim:prefilter`` the task fails before it is sent, with prefilter_result
  ["SEXUALLY_EXPLICIT", "PROFANITY"] and a status_reason.
- ``sim:big``       image results are >12 MB PNGs (2048x2048 random noise).
- ``sim:stuck``     the task reaches "waiting" and never moves again.

Images live on the simulator's own CDN, ``GET /cdn/{name}``, which needs no api-key (like
Discord's). Control endpoints for other processes (no api-key, not recorded):
``GET/DELETE /_sim/requests``, ``GET /_sim/tasks``, ``POST /_sim/config``,
``POST /_sim/accounts/{hash}``, ``POST /_sim/faults``, ``POST /_sim/release``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import email.parser
import email.policy
import hashlib
import json
import logging
import re
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from bot.userapi import sim_images
from bot.userapi.sim_images import Rendered

logger = logging.getLogger(__name__)

DEFAULT_ACCOUNT = "5f1c3a2e-0b7d-4c1e-9a65-3d2b8e4f7a10"
API = "/midjourney/v2"

GRID_TYPES = frozenset(
    {
        "imagine",
        "variation",
        "reroll",
        "blend",
        "zoom",
        "pan",
        "vary_subtle",
        "vary_strong",
        "inpaint",
    }
)
PROGRESS_TYPES = frozenset(
    {
        "imagine",
        "reroll",
        "blend",
        "zoom",
        "pan",
        "vary_subtle",
        "vary_strong",
        "inpaint",
        "animate",
    }
)
NO_WAITING_TYPES = frozenset({"info", "prefer", "speed"})
SINGLE_TYPES = frozenset({"upscale", "upsample"})
FINAL_STATUSES = frozenset({"done", "error"})
PROGRESS_STEPS = (10, 45, 80)
UPSAMPLE_CHOICES = (
    "v5_2x",
    "v5_4x",
    "subtle",
    "creative",
    "v6_2x_subtle",
    "v6_2x_creative",
    "v6r1_2x_subtle",
    "v6r1_2x_creative",
    "v7_2x_subtle",
    "v7_2x_creative",
)
PAN_CHOICES = ("left", "right", "up", "down")
PREFILTER_REASONS = ["SEXUALLY_EXPLICIT", "PROFANITY"]
FAKE_DISCORD_TOKEN = "MTSIM.fake-discord-token.never-store-me"
BIG_SIDE = 2048
PREVIEW_SIDE = 256
MAX_BODY = 64 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class SimulatorConfig:
    """Run-time knobs of the simulator; mutable while it runs."""

    pace: float = 0.0
    api_key: str | None = None
    accounts: list[str] = field(default_factory=lambda: [DEFAULT_ACCOUNT])
    grid_size: int = 1024
    next_actions: bool = True
    hold: bool = False
    send_webhooks: bool = True


@dataclass
class RecordedRequest:
    """One request the simulator received (control calls excluded)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    # When it arrived (time.monotonic), to order it against what others saw.
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form, the body as text."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body.decode("utf-8", errors="replace"),
        }


@dataclass
class WebhookDelivery:
    """One webhook POST attempt: where, what, and how it went."""

    url: str
    task: dict[str, Any]
    status: int | None
    error: str | None


@dataclass
class _Fault:
    status: int
    body: bytes
    content_type: str
    remaining: int
    delay: float


@dataclass
class _Account:
    hash: str
    status: str = "active"
    reason: str | None = None
    remix: bool = False
    fast_remaining_sec: int = 51876
    fast_total_sec: int = 54000
    speed: str = "fast"
    created_at: str = field(default_factory=_now)

    def public(self) -> dict[str, Any]:
        digest = hashlib.sha256(self.hash.encode()).hexdigest()
        return {
            "hash": self.hash,
            "token": FAKE_DISCORD_TOKEN,
            "channel_id": str(int(digest[:15], 16)),
            "status": self.status,
            "status_reason": self.reason,
            "external_username": f"sim_{digest[:6]}",
            "external_email": "s****@e****.com",
            "is_remix": self.remix,
            "created_at": self.created_at,
        }


@dataclass
class _StoredFile:
    data: bytes
    content_type: str


class ApiError(Exception):
    """An API error answer: HTTP status and the message for `{"status": false, "error": ...}`."""

    def __init__(self, status: int, message: str) -> None:
        """Keep the status and message."""
        super().__init__(message)
        self.status = status
        self.message = message


def _error_response(status: int, message: str) -> web.Response:
    return web.json_response({"status": False, "error": message}, status=status)


def _upsample_pair(prompt: str | None) -> list[str]:
    """The two upsample choices Midjourney offers for the prompt's model version."""
    text = prompt or ""
    if re.search(r"--niji\b", text):
        return ["v6_2x_subtle", "v6_2x_creative"]
    match = re.search(r"--(?:v|version)\s+(\d+(?:\.\d+)?)", text)
    if match is None:
        return ["v7_2x_subtle", "v7_2x_creative"]
    version = match.group(1)
    major = int(version.split(".")[0])
    if major < 6:
        return ["v5_2x", "v5_4x"]
    if version in ("6", "6.0"):
        return ["v6_2x_subtle", "v6_2x_creative"]
    if version.startswith("6."):
        return ["v6r1_2x_subtle", "v6r1_2x_creative"]
    return ["v7_2x_subtle", "v7_2x_creative"]


def _version(prompt: str | None) -> tuple[str, float]:
    """The model family (v or niji) and version a prompt runs on (V7 unless it names one)."""
    text = prompt or ""
    niji = re.search(r"--niji(?:\s+(\d+(?:\.\d+)?))?", text)
    if niji:
        return "niji", float(niji.group(1) or 6)
    match = re.search(r"--(?:v|version)\s+(\d+(?:\.\d+)?)", text)
    return "v", float(match.group(1)) if match else 7.0


# Midjourney's parameters that only some versions take, as (family, version) -> allowed.
_VERSION_PARAMS: dict[str, tuple[str, Callable[[str, float], bool]]] = {
    "oref": ("Omni reference", lambda family, version: family == "v" and version >= 7),
    "cref": ("Character reference", lambda family, version: 6 <= version < 7),
    "draft": ("Draft mode", lambda family, version: family == "v" and version >= 7),
}
# Upscale buttons that came with V5.2 (V5 for Vary (Region)); older upscales lack them.
_ACTION_MIN_VERSION = {"vary_subtle": 5.2, "vary_strong": 5.2, "zoom": 5.2, "pan": 5.2}


def _check_prompt_version(prompt: str) -> None:
    """Refuse parameters the prompt's version doesn't take, as Midjourney does."""
    family, version = _version(prompt)
    for flag, (name, allowed) in _VERSION_PARAMS.items():
        if re.search(rf"(?:^|\s)--{flag}\b", prompt) and not allowed(family, version):
            raise ApiError(400, f"{name} (--{flag}) is not available for this version")


def _action_fits(action: str, prompt: str | None) -> bool:
    family, version = _version(prompt)
    low = _ACTION_MIN_VERSION.get(action)
    return low is None or family == "niji" or version >= low


def _check_action_version(action: str, parent: dict[str, Any]) -> None:
    if not _action_fits(action, parent.get("prompt")):
        raise ApiError(400, f"{action} is not available for this version")


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{key} must be a string")
    return value or None


def _req_str(body: dict[str, Any], key: str) -> str:
    value = _opt_str(body, key)
    if value is None or not value.strip():
        raise ApiError(400, f"{key} is required")
    return value


def _opt_bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"{key} must be a boolean")
    return value


class Simulator:
    """The userapi.ai Midjourney API, simulated: tasks, webhooks, images, faults."""

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
        while self.config.hold:
            # Polling too, so `config.hold = False` set directly also frees the task.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release_event.wait(), 0.1)

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

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, "Invalid JSON body") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        return body

    def _account(self, account_hash: str) -> _Account:
        if account_hash not in self._accounts:
            if account_hash not in self.config.accounts:
                raise ApiError(404, "Account not found")
            self._accounts[account_hash] = _Account(account_hash)
        return self._accounts[account_hash]

    def _usable_account(self, account_hash: str | None) -> str:
        """The given account if it is active, else the next active one in rotation."""
        if account_hash is not None:
            account = self._account(account_hash)
            if account.status != "active":
                detail = f": {account.reason}" if account.reason else ""
                raise ApiError(400, f"Account {account_hash} is {account.status}{detail}")
            return account_hash
        candidates = self.config.accounts
        for offset in range(len(candidates)):
            candidate = candidates[(self._rotation + offset) % len(candidates)]
            if self._account(candidate).status == "active":
                self._rotation = (self._rotation + offset + 1) % len(candidates)
                return candidate
        raise ApiError(400, "No active accounts available")

    def _parent(
        self, body: dict[str, Any], allowed: frozenset[str], action: str
    ) -> dict[str, Any]:
        parent_hash = _req_str(body, "hash")
        parent = self.tasks.get(parent_hash)
        if parent is None:
            raise ApiError(404, "Task not found")
        if parent["status"] != "done":
            raise ApiError(400, f"Task is not done (status: {parent['status']})")
        if parent["type"] not in allowed:
            raise ApiError(400, f"Cannot {action} a task of type {parent['type']}")
        return parent

    def _still_image_parent(self, body: dict[str, Any], action: str) -> dict[str, Any]:
        parent = self._parent(body, SINGLE_TYPES, action)
        if parent["hash"] in self._animated:
            raise ApiError(400, f"Cannot {action} an animation")
        return parent

    def _new_task(
        self,
        body: dict[str, Any],
        type_: str,
        *,
        parent: dict[str, Any] | None = None,
        account_hash: str | None = None,
        choice: int | str | None = None,
        prompt: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        webhook_url = _opt_str(body, "webhook_url")
        if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
            raise ApiError(400, "webhook_url must be an http(s) url")
        webhook_type = _opt_str(body, "webhook_type")
        if webhook_type not in (None, "progress", "result"):
            raise ApiError(400, "webhook_type must be progress or result")
        if parent is not None:
            account = self._usable_account(parent["account_hash"])
            if prompt is None:
                prompt = parent.get("prompt")
        else:
            account = self._usable_account(account_hash)
        task: dict[str, Any] = {
            "hash": str(uuid.uuid4()),
            "account_hash": account,
            "parent_hash": parent["hash"] if parent else None,
            "webhook_url": webhook_url,
            "webhook_type": webhook_type,
            "callback_id": None,
            "type": type_,
            "choice": choice,
            "prompt": prompt,
            "progress": 0,
            "status": "sent",
            "result": None,
            "status_reason": None,
            "prefilter_result": [],
            "job_id": None,
            "created_at": _now(),
        }
        if extra:
            task.update(extra)
        self.tasks[task["hash"]] = task
        self.history[task["hash"]] = [task]
        return task

    def _launch(self, task: dict[str, Any]) -> web.Response:
        runner = asyncio.create_task(self._run(task["hash"]), name=f"sim-task-{task['hash']}")
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)
        return web.json_response({"hash": task["hash"]})

    # ----- task life --------------------------------------------------------------------------

    async def _update(self, hash: str, **changes: Any) -> dict[str, Any]:
        task = {**self.tasks[hash], **changes}
        self.tasks[hash] = task
        final = task["status"] in FINAL_STATUSES
        if final:
            self._forget_claims(task)
        url = task.get("webhook_url")
        if url and self.config.send_webhooks and (task.get("webhook_type") == "progress" or final):
            await self._deliver(url, task)
        # History (what wait_for_status sees) grows after delivery, so tests waiting on a
        # status may rely on its webhook having been attempted.
        self.history.setdefault(hash, []).append(task)
        return task

    def _forget_claims(self, task: dict[str, Any]) -> None:
        # A failed upscale or seed may be asked for again.
        if task["status"] != "error" or task["parent_hash"] is None:
            return
        if task["type"] == "upscale" and isinstance(task["choice"], int):
            self._upscaled.discard((task["parent_hash"], task["choice"]))
        if task["type"] == "seed":
            self._seeded.discard(task["parent_hash"])

    async def _deliver(self, url: str, task: dict[str, Any]) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=5, connect=2)
            )
        try:
            async with self._session.post(url, json=task) as response:
                await response.read()
                self.webhooks.append(WebhookDelivery(url, task, response.status, None))
                if response.status >= 400:
                    logger.warning("webhook %s answered %s", url, response.status)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # The bot may be down; it polls /status after a restart, so the task goes on.
            self.webhooks.append(WebhookDelivery(url, task, None, repr(exc)))
            logger.warning("webhook to %s failed: %r", url, exc)

    async def _run(self, hash: str, *, sync: bool = False) -> None:
        task = self.tasks[hash]
        type_ = task["type"]
        prompt = task.get("prompt") or ""
        await self._sleep()
        if "sim:prefilter" in prompt:
            await self._update(
                hash,
                status="error",
                prefilter_result=list(PREFILTER_REASONS),
                status_reason="Prompt rejected by the prefilter: " + ", ".join(PREFILTER_REASONS),
            )
            return
        if type_ not in NO_WAITING_TYPES:
            await self._update(hash, status="waiting")
            if "sim:stuck" in prompt:
                await asyncio.Event().wait()
            if not sync:
                await self._held()
            await self._sleep()
        fails = "sim:error" in prompt
        if type_ in PROGRESS_TYPES:
            for step, progress in enumerate(PROGRESS_STEPS):
                preview = await self._preview(self.tasks[hash], progress)
                await self._update(hash, status="progress", progress=progress, result=preview)
                if fails and step == 0:
                    break
                await self._sleep()
        if fails:
            await self._update(hash, status="error", status_reason="Simulated Midjourney failure")
            return
        try:
            result = await self._result(self.tasks[hash])
        except (OSError, ValueError) as exc:
            logger.exception("simulator could not produce the result of %s", hash)
            await self._update(hash, status="error", status_reason=f"Simulator failure: {exc}")
            return
        changes: dict[str, Any] = {
            "status": "done",
            "progress": 100,
            "result": result,
            "job_id": str(uuid.uuid4()),
        }
        actions = self._next_actions(self.tasks[hash])
        if actions is not None and self.config.next_actions:
            changes["next_actions"] = actions
        await self._update(hash, **changes)

    def _next_actions(self, task: dict[str, Any]) -> list[dict[str, Any]] | None:
        type_ = task["type"]
        animated = task["hash"] in self._animated
        if type_ == "animate" or (type_ == "reroll" and animated):
            return [{"type": "upscale", "choices": [1, 2, 3, 4]}, {"type": "reroll"}]
        if type_ in GRID_TYPES:
            return [
                {"type": "upscale", "choices": [1, 2, 3, 4]},
                {"type": "variation", "choices": [1, 2, 3, 4]},
                {"type": "reroll"},
            ]
        if type_ in SINGLE_TYPES:
            if animated:
                return []
            actions: list[dict[str, Any]] = [
                action
                for action in (
                    {"type": "vary_subtle"},
                    {"type": "vary_strong"},
                    {"type": "inpaint"},
                    {"type": "zoom", "choices": [50, 75]},
                    {"type": "pan", "choices": list(PAN_CHOICES)},
                )
                if _action_fits(str(action["type"]), task.get("prompt"))
            ]
            if type_ == "upscale":
                actions.append({"type": "upsample", "choices": _upsample_pair(task["prompt"])})
            actions.append({"type": "animate", "choices": ["high", "low"]})
            return actions
        return None

    # ----- images -----------------------------------------------------------------------------

    def _store(self, name: str, rendered: Rendered) -> dict[str, Any]:
        self._files[name] = _StoredFile(rendered.data, rendered.content_type)
        url = f"{self.base_url}/cdn/{name}"
        return {
            "url": url,
            "proxy_url": f"{url}?proxy=1",
            "filename": name,
            "content_type": rendered.content_type,
            "width": rendered.width,
            "height": rendered.height,
            "size": len(rendered.data),
        }

    def _label(self, task: dict[str, Any]) -> str:
        choice = task.get("choice")
        words = [task["type"].upper().replace("_", " ")]
        if choice is not None:
            words.append(str(choice))
        if task["type"] == "blend":
            words.append(f"x{len(task.get('urls') or [])}")
        words.append("#" + task["hash"][:8])
        return " ".join(words)

    async def _preview(self, task: dict[str, Any], progress: int) -> dict[str, Any]:
        rendered = await asyncio.to_thread(
            sim_images.render_preview,
            task["hash"],
            self._label(task),
            task.get("prompt"),
            PREVIEW_SIDE,
            progress,
        )
        return self._store(f"{task['hash']}_p{progress}.png", rendered)

    async def _result(self, task: dict[str, Any]) -> Any:
        type_ = task["type"]
        hash_ = task["hash"]
        prompt = task.get("prompt")
        big = "sim:big" in (prompt or "")
        side = max(64, self.config.grid_size)
        label = self._label(task)
        parent = self.tasks.get(task["parent_hash"] or "")
        if type_ == "describe":
            return self._describe_prompts(task["prompt"] or "")
        if type_ == "info":
            return self._info_result(task)
        if type_ == "prefer":
            account = self._account(task["account_hash"])
            account.remix = not account.remix
            return "on" if account.remix else "off"
        if type_ == "speed":
            self._account(task["account_hash"]).speed = str(task["choice"])
            return None
        if type_ == "seed":
            assert parent is not None
            urls = []
            for index in range(1, 5):
                rendered = await asyncio.to_thread(
                    sim_images.render_single,
                    parent["hash"],
                    index,
                    f"SEED {index}",
                    prompt,
                    side // 2,
                )
                urls.append(self._store(f"{hash_}_{index}.png", rendered))
            digits = str(int(hashlib.sha256(parent["hash"].encode()).hexdigest()[:8], 16))
            return {"seed": digits, "urls": urls}
        rerolls_animation = type_ == "reroll" and parent and parent["hash"] in self._animated
        if type_ == "animate" or rerolls_animation:
            self._animated.add(hash_)
            rendered = await asyncio.to_thread(
                sim_images.render_animation, hash_, label, prompt, side // 2
            )
        elif type_ == "upscale" and parent is not None and parent["hash"] in self._animated:
            self._animated.add(hash_)
            rendered = await asyncio.to_thread(
                sim_images.render_animation,
                parent["hash"],
                label,
                prompt,
                side // 2,
                index=int(task["choice"]),
            )
        elif big:
            rendered = await asyncio.to_thread(sim_images.render_noise, BIG_SIDE)
        elif type_ in SINGLE_TYPES and parent is not None:
            if type_ == "upscale":
                look = (parent["hash"], int(task["choice"]))
                single_side = side // 2
            else:
                look = self._look.get(parent["hash"], (parent["hash"], 1))
                single_side = 2 * int(parent["result"]["width"])
            self._look[hash_] = look
            rendered = await asyncio.to_thread(
                sim_images.render_single, look[0], look[1], label, prompt, single_side
            )
        else:
            rendered = await asyncio.to_thread(sim_images.render_grid, hash_, label, prompt, side)
        self._spend_fast_time(task)
        return self._store(f"{hash_}.{rendered.ext}", rendered)

    def _spend_fast_time(self, task: dict[str, Any]) -> None:
        account = self._account(task["account_hash"])
        if account.speed != "relax":
            # A rough minute of GPU per job, so "fast time low" alerts can be exercised.
            account.fast_remaining_sec = max(0, account.fast_remaining_sec - 60)

    @staticmethod
    def _describe_prompts(url: str) -> list[str]:
        tag = hashlib.sha256(url.encode()).hexdigest()[:6]
        return [
            f"a watercolor landscape with soft light, tag {tag} --ar 1:1",
            f"a cinematic photo of a quiet street at dusk, tag {tag} --ar 3:2",
            f"an isometric illustration of a tiny workshop, tag {tag}",
            f"a minimalist poster of geometric shapes, tag {tag} --v 6.1",
        ]

    def _info_result(self, task: dict[str, Any]) -> dict[str, Any]:
        account = self._account(task["account_hash"])
        queued = running = 0
        for other in self.tasks.values():
            if other["account_hash"] != account.hash or other["type"] in NO_WAITING_TYPES:
                continue
            if other["status"] in ("sent", "waiting"):
                queued += 1
            elif other["status"] == "progress":
                running += 1
        fast = account.speed != "relax"
        return {
            "user_id": str(uuid.uuid5(uuid.NAMESPACE_URL, account.hash)),
            "subscription": {"name": "Standard", "active_to": "2099-01-01T00:00:00+00:00"},
            "visibility_mode": "Public",
            "fast_time_remaining": {
                "remaining_sec": account.fast_remaining_sec,
                "total_sec": account.fast_total_sec,
            },
            "lifetime_usage": {"cnt": 107, "sec": 3816},
            "relaxed_usage": {"cnt": 0, "sec": 0},
            "queued_jobs_fast": queued if fast else 0,
            "queued_jobs_relax": 0 if fast else queued,
            "running_jobs": running,
        }

    # ----- API handlers -----------------------------------------------------------------------

    async def _imagine(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        prompt = _req_str(body, "prompt")
        _opt_bool(body, "is_disable_prefilter")
        _check_prompt_version(prompt)
        task = self._new_task(
            body, "imagine", account_hash=_opt_str(body, "account_hash"), prompt=prompt
        )
        return self._launch(task)

    async def _animate(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._still_image_parent(body, "animate")
        choice = body.get("choice")
        if choice not in ("high", "low"):
            raise ApiError(400, "choice must be one of: high, low")
        return self._launch(self._new_task(body, "animate", parent=parent, choice=choice))

    async def _describe(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        url = _req_str(body, "url")
        task = self._new_task(
            body, "describe", account_hash=_opt_str(body, "account_hash"), prompt=url
        )
        return self._launch(task)

    async def _upscale(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._parent(body, GRID_TYPES | {"animate"}, "upscale")
        choice = body.get("choice")
        if isinstance(choice, bool) or not isinstance(choice, int) or not 1 <= choice <= 4:
            raise ApiError(400, "choice must be in [1..4]")
        if (parent["hash"], choice) in self._upscaled:
            raise ApiError(400, "Image already upscaled")
        task = self._new_task(body, "upscale", parent=parent, choice=choice)
        self._upscaled.add((parent["hash"], choice))
        return self._launch(task)

    async def _upsample(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._parent(body, frozenset({"upscale"}), "upsample")
        if parent["hash"] in self._animated:
            raise ApiError(400, "Cannot upsample an animation")
        choice = body.get("choice")
        if choice not in UPSAMPLE_CHOICES:
            raise ApiError(400, "choice must be one of: " + ", ".join(UPSAMPLE_CHOICES))
        return self._launch(self._new_task(body, "upsample", parent=parent, choice=choice))

    async def _variation(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._parent(body, GRID_TYPES, "make variations of")
        if parent["hash"] in self._animated:
            raise ApiError(400, "Cannot make variations of an animation")
        choice = body.get("choice")
        if isinstance(choice, bool) or not isinstance(choice, int) or not 1 <= choice <= 4:
            raise ApiError(400, "choice must be in [1..4]")
        task = self._new_task(
            body, "variation", parent=parent, choice=choice, prompt=_opt_str(body, "prompt")
        )
        return self._launch(task)

    async def _seed(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._parent(body, GRID_TYPES | {"animate"}, "get the seed of")
        is_async = _opt_bool(body, "is_async")
        if parent["hash"] in self._seeded:
            raise ApiError(400, "Seed can only be requested once for this task")
        task = self._new_task(body, "seed", parent=parent)
        self._seeded.add(parent["hash"])
        if is_async:
            return self._launch(task)
        await self._run(task["hash"], sync=True)
        return web.json_response(self.tasks[task["hash"]])

    async def _vary(self, request: web.Request, type_: str) -> web.Response:
        body = await self._json_body(request)
        parent = self._still_image_parent(body, "vary")
        _check_action_version(type_, parent)
        task = self._new_task(body, type_, parent=parent, prompt=_opt_str(body, "prompt"))
        return self._launch(task)

    async def _vary_subtle(self, request: web.Request) -> web.Response:
        return await self._vary(request, "vary_subtle")

    async def _vary_strong(self, request: web.Request) -> web.Response:
        return await self._vary(request, "vary_strong")

    async def _inpaint(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._still_image_parent(body, "inpaint")
        prompt = _req_str(body, "prompt")
        mask_text = _req_str(body, "mask")
        try:
            mask = base64.b64decode(mask_text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ApiError(400, "mask must be base64 of a png image") from exc
        if sim_images.sniff(mask) != "png":
            raise ApiError(400, "mask must be base64 of a png image")
        try:
            width, height = await asyncio.to_thread(sim_images.dimensions, mask)
        except (OSError, ValueError) as exc:
            raise ApiError(400, "mask must be base64 of a png image") from exc
        image = parent["result"]
        if (width, height) != (image["width"], image["height"]):
            raise ApiError(
                400,
                f"mask size {width}x{height} must equal the image size "
                f"{image['width']}x{image['height']}",
            )
        return self._launch(self._new_task(body, "inpaint", parent=parent, prompt=prompt))

    async def _blend(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        urls = body.get("urls")
        if not isinstance(urls, list) or not 2 <= len(urls) <= 5:
            raise ApiError(400, "urls must hold 2 to 5 images")
        for item in urls:
            if not isinstance(item, dict) or not isinstance(item.get("url"), str):
                raise ApiError(400, "each of urls must be {url, ext}")
            if not item["url"]:
                raise ApiError(400, "each of urls must be {url, ext}")
            if item.get("ext") not in ("png", "jpg"):
                raise ApiError(400, "ext must be png or jpg")
        task = self._new_task(
            body,
            "blend",
            account_hash=_opt_str(body, "account_hash"),
            extra={"urls": [{"url": u["url"], "ext": u["ext"]} for u in urls]},
        )
        return self._launch(task)

    async def _reroll(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._parent(body, GRID_TYPES | {"animate"}, "reroll")
        task = self._new_task(body, "reroll", parent=parent, prompt=_opt_str(body, "prompt"))
        return self._launch(task)

    async def _zoom(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._still_image_parent(body, "zoom")
        _check_action_version("zoom", parent)
        choice = body.get("choice")
        prompt = _opt_str(body, "prompt")
        if choice is None and prompt is None:
            raise ApiError(400, "choice or prompt is required")
        if choice is not None and (isinstance(choice, bool) or choice not in (50, 75)):
            raise ApiError(400, "choice must be in [50, 75]")
        return self._launch(
            self._new_task(body, "zoom", parent=parent, choice=choice, prompt=prompt)
        )

    async def _pan(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._still_image_parent(body, "pan")
        _check_action_version("pan", parent)
        choice = body.get("choice")
        if choice not in PAN_CHOICES:
            raise ApiError(400, "choice must be in [left, right, up, down]")
        task = self._new_task(
            body, "pan", parent=parent, choice=choice, prompt=_opt_str(body, "prompt")
        )
        return self._launch(task)

    async def _info(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        account = _req_str(body, "account_hash")
        return self._launch(self._new_task(body, "info", account_hash=account))

    async def _account_setting(
        self, request: web.Request, type_: str, choices: tuple[str, ...]
    ) -> web.Response:
        body = await self._json_body(request)
        account = _req_str(body, "account_hash")
        choice = body.get("choice")
        if choice not in choices:
            raise ApiError(400, "choice must be one of: " + ", ".join(choices))
        is_async = _opt_bool(body, "is_async")
        task = self._new_task(body, type_, account_hash=account, choice=choice)
        if is_async:
            return self._launch(task)
        await self._run(task["hash"], sync=True)
        return web.json_response({"status": True, "result": self.tasks[task["hash"]]})

    async def _prefer(self, request: web.Request) -> web.Response:
        return await self._account_setting(request, "prefer", ("remix",))

    async def _speed(self, request: web.Request) -> web.Response:
        return await self._account_setting(request, "speed", ("relax", "fast", "turbo"))

    async def _status(self, request: web.Request) -> web.Response:
        hash_ = request.query.get("hash", "")
        if not hash_:
            raise ApiError(400, "hash is required")
        task = self.tasks.get(hash_)
        if task is None:
            raise ApiError(404, "Task not found")
        return web.json_response(task)

    async def _discord_info(self, request: web.Request) -> web.Response:
        account_hash = request.query.get("account_hash", "")
        if not account_hash:
            raise ApiError(400, "account_hash is required")
        return web.json_response(self._account(account_hash).public())

    async def _upload(self, request: web.Request) -> web.Response:
        if request.content_type == "multipart/form-data":
            fields = self._multipart(request.headers.get("Content-Type", ""), await request.read())
            data = fields.get("image")
            if data is None:
                raise ApiError(400, "image is required")
            account_field = fields.get("account_hash")
            account = self._usable_account(account_field.decode() if account_field else None)
            kind = sim_images.sniff(data)
            if kind is None:
                raise ApiError(400, "Image must be in png or jpg format")
            try:
                width, height = await asyncio.to_thread(sim_images.dimensions, data)
            except (OSError, ValueError) as exc:
                raise ApiError(400, "Image must be in png or jpg format") from exc
            content_type = "image/png" if kind == "png" else "image/jpeg"
            rendered = Rendered(data, width, height, content_type, kind)
        else:
            body = await self._json_body(request)
            url = _req_str(body, "url")
            if not url.startswith(("http://", "https://")):
                raise ApiError(400, "url must be an http(s) link to a png or jpg file")
            account = self._usable_account(_opt_str(body, "account_hash"))
            rendered = await asyncio.to_thread(sim_images.render_placeholder, url, 512)
        name = f"upload_{uuid.uuid4().hex}.{rendered.ext}"
        image = self._store(name, rendered)
        image["id"] = str(int(uuid.uuid4().hex[:15], 16))
        image["ephemeral"] = False
        return web.json_response({"account_hash": account, "image": image})

    @staticmethod
    def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
        # The body was already read for recording, so parse the bytes rather than the stream.
        head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        fields: dict[str, bytes] = {}
        if not message.is_multipart():
            raise ApiError(400, "Malformed multipart body")
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = payload
        return fields

    async def _cdn(self, request: web.Request) -> web.Response:
        stored = self._files.get(request.match_info["name"])
        if stored is None:
            return web.Response(status=404, text="Not found")
        return web.Response(body=stored.data, headers={"Content-Type": stored.content_type})

    # ----- control endpoints ------------------------------------------------------------------

    async def _ctl_requests(self, _request: web.Request) -> web.Response:
        return web.json_response([r.to_dict() for r in self.requests])

    async def _ctl_clear_requests(self, _request: web.Request) -> web.Response:
        self.clear_requests()
        return web.json_response({"status": True})

    async def _ctl_tasks(self, _request: web.Request) -> web.Response:
        return web.json_response(self.tasks)

    async def _ctl_config(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        known = {f.name: f for f in dataclasses.fields(SimulatorConfig)}
        for key, value in body.items():
            if key not in known:
                raise ApiError(400, f"unknown config field {key}")
            current = getattr(self.config, key)
            if isinstance(current, bool) and not isinstance(value, bool):
                raise ApiError(400, f"{key} must be a boolean")
            if isinstance(current, int | float) and not isinstance(current, bool):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ApiError(400, f"{key} must be a number")
                value = type(current)(value)
            if key == "hold" and value is False:
                self.release()
            else:
                setattr(self.config, key, value)
        return web.json_response(dataclasses.asdict(self.config))

    async def _ctl_account(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        account_hash = request.match_info["hash"]
        self.set_account(
            account_hash,
            status=str(body.get("status", "active")),
            reason=body.get("reason"),
            remix=body.get("remix"),
            fast_remaining_sec=body.get("fast_remaining_sec"),
        )
        return web.json_response(self._account(account_hash).public())

    async def _ctl_faults(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        self.fail_next(
            _req_str(body, "path"),
            status=int(body.get("status", 500)),
            body=str(body.get("body", '{"status": false, "error": "Internal server error"}')),
            content_type=str(body.get("content_type", "application/json")),
            times=int(body.get("times", 1)),
            delay=float(body.get("delay", 0.0)),
        )
        return web.json_response({"status": True})

    async def _ctl_release(self, _request: web.Request) -> web.Response:
        self.release()
        return web.json_response({"status": True})


async def _serve(args: argparse.Namespace) -> None:
    config = SimulatorConfig(
        pace=args.pace,
        api_key=args.api_key,
        grid_size=args.grid_size,
        next_actions=not args.no_next_actions,
    )
    simulator = Simulator(config)
    url = await simulator.start(args.host, args.port)
    print(f"userapi simulator on {url}", flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    try:
        await done.wait()
    finally:
        await simulator.stop()


def main(argv: list[str] | None = None) -> None:
    """Command line entry: serve the simulator until interrupted."""
    parser = argparse.ArgumentParser(description="userapi.ai Midjourney API simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--pace", type=float, default=1.0, help="seconds between status steps")
    parser.add_argument("--api-key", default=None, help="accept only this key")
    parser.add_argument("--grid-size", type=int, default=1024)
    parser.add_argument("--no-next-actions", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
