"""The bot's HTTP server: health check, userapi webhooks, and (optionally) Telegram's webhook."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx
from aiohttp import web
from pydantic import ValidationError
from redis.exceptions import RedisError

from bot.jobs.service import Jobs
from bot.jobs.values import update_from_task
from bot.runtime.metrics import CONTENT_TYPE_LATEST, WEBHOOKS, exposition
from bot.userapi import Task, UserAPIClient, UserAPIError
from bot.userapi.netsafe import UnsafeURLError, urls_in
from storage.database import STORAGE_ERRORS
from storage.tasks import FINAL_RANK, TaskRepo, status_rank

log = logging.getLogger(__name__)

# A task object is a few KB; anything near this is not from userapi.
MAX_WEBHOOK_BYTES = 256 * 1024
USERAPI_WEBHOOK_PREFIX = "/userapi/webhook/"
TELEGRAM_WEBHOOK_PREFIX = "/telegram/webhook/"

# Headers a reverse proxy adds: the request is someone else's, whatever address it comes from.
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
# How a database or Redis that is down shows itself (drivers raise their own errors or OSError).
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (*STORAGE_ERRORS, RedisError)
# Private networks (RFC 1918, unique local IPv6): a container network, a LAN. Python's
# `is_private` also counts documentation and reserved ranges, which are no one's LAN.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
# A service that doesn't answer a readiness check within this long counts as down.
READY_CHECK_SECONDS = 2.0


@dataclass
class Readiness:
    """What /healthz and /readyz report: started, stopping, and the services the bot needs."""

    started: bool = False
    stopping: bool = False
    # Each raises (or hangs) when its service is down.
    checks: dict[str, Callable[[], Awaitable[object]]] = field(default_factory=dict)

    async def check(self) -> list[bool]:
        """Whether each service answers, asked all at once."""
        return list(await asyncio.gather(*(_answers(check) for check in self.checks.values())))


async def _answers(check: Callable[[], Awaitable[object]]) -> bool:
    try:
        async with asyncio.timeout(READY_CHECK_SECONDS):
            await check()
    except DEPENDENCY_ERRORS as error:
        log.warning("Readiness check failed: %s", type(error).__name__)
        return False
    return True


READY = web.AppKey("ready", Readiness)
# The API document does not promise a Content-Type for webhooks: take JSON, and plain text or
# no type at all (some senders omit it), but refuse forms and files outright.
JSON_TYPES = frozenset({"application/json", "text/plain"})


def _json_ish(request: web.Request) -> bool:
    """Whether the body claims to be JSON (or claims nothing)."""
    if "Content-Type" not in request.headers:
        return True
    kind = request.content_type
    return kind in JSON_TYPES or kind.endswith("+json")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, however many pieces it arrives in; 413 past `limit` bytes.

    `request.content.read(n)` returns only what happens to be buffered: over a real network a
    body arrives in several segments, so it is read to the end here.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=declared)
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return bytes(body)


def derive_secret(token: str, purpose: str) -> str:
    """An unguessable, stable secret for a URL path, derived from the bot token.

    Stable across restarts, so webhooks of tasks started before a restart still arrive.
    """
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()[:40]


def _final(task: Task) -> bool:
    return task.status is not None and status_rank(task.status.value) >= FINAL_RANK


class UserAPIWebhook:
    """Receives task updates from userapi: checks them, stores results, handles the rest later."""

    def __init__(self, *, jobs: Jobs, client: UserAPIClient, tasks: TaskRepo, secret: str) -> None:
        self._jobs = jobs
        self._client = client
        self._tasks = tasks
        self._secret = secret
        self._confirming: set[str] = set()

    async def handle(self, request: web.Request) -> web.Response:
        """Handle one webhook POST, counting how it went."""
        try:
            outcome = await self._take(request)
        except web.HTTPException:
            WEBHOOKS.labels("userapi", "refused").inc()
            raise
        WEBHOOKS.labels("userapi", outcome).inc()
        return web.json_response({"ok": True})

    async def _take(self, request: web.Request) -> str:
        """Check one webhook and pass it on; how it was taken (accepted, duplicate, refused)."""
        given = request.match_info.get("secret", "")
        if not same_secret(given, self._secret):
            raise web.HTTPNotFound()
        if request.content_length is not None and request.content_length > MAX_WEBHOOK_BYTES:
            raise web.HTTPRequestEntityTooLarge(
                max_size=MAX_WEBHOOK_BYTES, actual_size=request.content_length
            )
        if not _json_ish(request):
            raise web.HTTPUnsupportedMediaType(text="expected application/json")
        body = await read_body(request, MAX_WEBHOOK_BYTES)
        try:
            task = Task.model_validate_json(body)
        except ValidationError as error:
            # Bad UTF-8, bad JSON and too deeply nested JSON are validation errors here too.
            log.info("Rejected a malformed webhook: %s", type(error).__name__)
            raise web.HTTPBadRequest(text="invalid task object") from error
        # Anyone who learns the webhook URL can forge one: it is a hint. Its result URLs must
        # point at the API's own files or at public https hosts; otherwise the task is taken
        # from the API's own answer instead.
        result = task.model_dump(mode="json", include={"result"}).get("result")
        pointed = list(urls_in(result))
        urls = [httpx.URL(url) for url in pointed if self._client.urls.looks_safe(url)]
        if len(urls) < len(pointed):
            log.warning("Webhook for task %s points at a refused URL; asking the API", task.hash)
            self._jobs.spawn(self._confirm(task.hash))
            return "refused"
        if all(self._client.urls.trusted(url) for url in urls):
            await self._store_final(task)
            return "accepted" if self._jobs.offer(task) else "duplicate"
        if _final(task):
            await self._resolve_then_offer(task, urls)  # checked and stored before answering
        else:
            self._jobs.spawn(self._resolve_then_offer(task, urls))
        return "accepted"

    async def _store_final(self, task: Task) -> None:
        """Store a final update before the webhook is answered; the inbox shows it after."""
        # userapi sends a result once: a replica killed right after answering (the rest is
        # handled in the background) must not take it along. Progress may be lost: more comes.
        update = update_from_task(task)
        if update is not None and _final(task):
            record = await self._tasks.apply(update)
            if record is not None:
                self._jobs.stored[task.hash] = record

    async def _resolve_then_offer(self, task: Task, urls: list[httpx.URL]) -> None:
        """Offer the task if its hosts resolve to public addresses, else ask the API."""
        try:
            for url in urls:
                await self._client.urls.check(url)
        except UnsafeURLError as error:
            log.warning("Webhook for task %s: %s; asking the API", task.hash, error)
            await self._confirm(task.hash)
            return
        await self._store_final(task)
        self._jobs.offer(task)

    async def _confirm(self, task_hash: str) -> None:
        """Offer the task as `GET /status` tells it, if the bot knows the task."""
        # Only tasks of ours, each once at a time: forged hints can't make the bot flood the API.
        if task_hash in self._confirming or await self._tasks.get_by_hash(task_hash) is None:
            return
        self._confirming.add(task_hash)
        try:
            task = await self._client.status(hash=task_hash)
        except UserAPIError as error:
            # The poller asks again on its own schedule: the hint is only dropped.
            log.info("Task %s not confirmed: %s", task_hash, error.message)
            return
        finally:
            self._confirming.discard(task_hash)
        self._jobs.offer(task)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 200 once the bot has started, 503 before."""
    if request.app[READY].started:
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "starting"}, status=503)


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 while started, not stopping, and every service the bot needs answers."""
    state = request.app[READY]
    if not state.started or state.stopping:
        status = "stopping" if state.stopping else "starting"
        return web.json_response({"status": status}, status=503)
    answers = await state.check()
    down = [name for name, answered in zip(state.checks, answers, strict=True) if not answered]
    if down:
        return web.json_response({"status": "unavailable", "down": down}, status=503)
    return web.json_response({"status": "ready"})


def same_secret(given: str, expected: str) -> bool:
    """Whether a secret a request carries is the expected one (compared in constant time)."""
    # compare_digest refuses str with non-ASCII characters (a 500 for a forged header); bytes
    # compare anything. aiohttp decodes headers with surrogateescape, so encode them back so.
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def metrics_allowed(remote: str | None, headers: Mapping[str, str], token: str | None) -> bool:
    """Whether a request may read /metrics: the token, or a private address reaching us directly.

    A request a proxy forwarded comes from the proxy's private address on behalf of anyone,
    so an address counts only without forwarding headers.
    """
    if token and same_secret(headers.get("Authorization", ""), f"Bearer {token}"):
        return True
    if any(name in headers for name in FORWARDING_HEADERS) or remote is None:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:  # a Unix socket's peer: only local processes reach it
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or any(address in network for network in PRIVATE_NETWORKS)


def metrics_route(token: str | None) -> Callable[[web.Request], Awaitable[web.Response]]:
    """GET /metrics: the Prometheus text format, for those `metrics_allowed` lets in."""

    async def metrics(request: web.Request) -> web.Response:
        if not metrics_allowed(request.remote, request.headers, token):
            raise web.HTTPForbidden(text="metrics are for the owner's monitoring")
        response = web.Response(body=exposition())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    return metrics


def build_web_app(
    *,
    jobs: Jobs,
    client: UserAPIClient,
    tasks: TaskRepo,
    webhook_secret: str,
    readiness: Readiness | None = None,
    metrics_token: str | None = None,
) -> web.Application:
    """The aiohttp application with the bot's own routes."""
    app = web.Application(client_max_size=MAX_WEBHOOK_BYTES)
    app[READY] = readiness or Readiness()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_route(metrics_token))
    app.router.add_post(
        USERAPI_WEBHOOK_PREFIX + "{secret}",
        UserAPIWebhook(jobs=jobs, client=client, tasks=tasks, secret=webhook_secret).handle,
    )
    return app
